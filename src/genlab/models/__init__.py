"""Model families. Each file holds one family: `XConfig` (frozen dataclass) and `X` (nn.Module).

Every model keeps the same interface so that one training loop, one run directory and the
latent tools serve them all:
- `X(config)` builds it; `config` is JSON-serialisable with `dataclasses.asdict`.
- `loss(batch) -> (Tensor, dict[str, Tensor])`: the scalar to minimise and detached scalars to
  log (converted to floats only at logging steps, so a GPU is not synchronised every step).
- `sample(n, *, generator=None, y=None) -> Tensor` (n, C, H, W) in [0, 1].
- Models with a latent space: `encode(x, y=None) -> z` and `decode(z, y=None) -> x` in [0, 1].
"""

from genlab.models.autoencoder import Autoencoder, AutoencoderConfig
from genlab.models.classifier import Classifier, ClassifierConfig
from genlab.models.cyclegan import CycleGAN, CycleGANConfig
from genlab.models.ddpm import Diffusion, DiffusionConfig
from genlab.models.gan import GAN, GANConfig
from genlab.models.noisy_classifier import NoisyClassifier, NoisyClassifierConfig
from genlab.models.vae import VAE, VAEConfig

FAMILIES = {
    "ae": (AutoencoderConfig, Autoencoder),
    "vae": (VAEConfig, VAE),
    "classifier": (ClassifierConfig, Classifier),
    "gan": (GANConfig, GAN),
    "cyclegan": (CycleGANConfig, CycleGAN),
    # one diffusion family in three settings (pixel space, latent, text-conditioned latent)
    "ddpm": (DiffusionConfig, Diffusion),
    "ldm": (DiffusionConfig, Diffusion),
    "txt2img": (DiffusionConfig, Diffusion),
    "noisy-classifier": (NoisyClassifierConfig, NoisyClassifier),
}
