"""Variational autoencoder (Kingma & Welling 2014, "Auto-Encoding Variational Bayes").

Encoder q(z|x) = N(mu, diag(exp(logvar))), prior p(z) = N(0, I), decoder p(x|z) Bernoulli or
Gaussian per pixel. Training maximises the evidence lower bound

    ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || p(z)) <= log p(x),

with z = mu + exp(logvar / 2) * eps, eps ~ N(0, I) (the reparameterization trick), and `beta`
weighting the KL term (beta-VAE, Higgins et al. 2017). `iwae_log_likelihood` tightens the bound
with k importance samples (Burda et al. 2016, "Importance Weighted Autoencoders"). With
`num_classes > 0` the model is a conditional VAE (Sohn et al. 2015): a one-hot label is fed to
the encoder head and to the decoder.

With `latent_channels > 0` the latent is a small feature map z (c, s, s) instead of a vector,
the first stage of latent diffusion (Rombach et al. 2022, "High-Resolution Image Synthesis with
Latent Diffusion Models"): the encoder keeps its bottom map and a 3x3 conv gives (mu, logvar) per
element, the decoder starts with 3x3 convs on z. KL and log-densities sum over all elements.

The conv stack (`ConvEncoder`, `ConvDecoder`) is the autoencoder's, from
`genlab.models.autoencoder`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from genlab.data import Batch
from genlab.errors import GenlabError
from genlab.family import (
    CONDITIONAL,
    Configured,
    Family,
    image_config,
    image_options,
    num_classes,
    refuse_binarized_colour,
)
from genlab.models.autoencoder import ConvDecoder, ConvEncoder

LOG_2PI = math.log(2 * math.pi)


class ELBO(NamedTuple):
    """Per-example terms in nats, each (B,): elbo = recon - kl."""

    elbo: torch.Tensor
    recon: torch.Tensor  # single-sample Monte-Carlo estimate of E_q[log p(x|z)]
    kl: torch.Tensor  # analytic KL(q(z|x) || N(0, I))


class NLLResult(NamedTuple):
    """Test-set means per image, in nats and in bits per dimension (nats / (D ln 2))."""

    neg_elbo_nats: float
    nll_nats: float
    neg_elbo_bpd: float
    nll_bpd: float
    n: int


def gaussian_log_prob(x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Elementwise log N(x; mu, exp(logvar))."""
    return -0.5 * (LOG_2PI + logvar + (x - mu).square() * torch.exp(-logvar))


def kl_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) summed over the last dim: (B, D) -> (B,).

    For a spatial latent (B, c, s, s) pass mu.flatten(1) and logvar.flatten(1).
    """
    # Kingma & Welling 2014, appendix B: -1/2 sum(1 + logvar - mu^2 - exp(logvar))
    return -0.5 * (1 + logvar - mu.square() - logvar.exp()).sum(-1)


def kl_weight(progress: float, warmup: float) -> float:
    """The KL term's weight relative to beta at `progress` through training: rises linearly
    from 0 to 1 over the first `warmup` of the budget (KL annealing, Bowman et al. 2016), then
    stays 1; `warmup` 0 is 1 throughout."""
    return 1.0 if warmup <= 0 else min(1.0, max(0.0, progress) / warmup)


@dataclass(frozen=True)
class VAEConfig:
    """Attributes:
    channels: image channels (1 grayscale, 3 RGB).
    image_size: image side in pixels; 7 or 4 times a power of two (28, 32, 64).
    latent_dim: size of z. 32 leaves room to spare on Fashion-MNIST: dimensions the data does
        not need collapse to the prior (KL ~ 0) and cost almost nothing; a 3-minute run used
        about 17 nats of KL in total.
    widths: channels after each stride-2 level, shallow to deep; the last entry repeats when
        the image needs more levels than listed (28 needs 2, 32 needs 3, 64 needs 4).
    likelihood: "bernoulli" (logits per pixel; intensities in [0, 1] as soft targets) or
        "gaussian" (mean sigmoid(logits), one global log-variance shared by all pixels).
    learn_logvar: gaussian only; learn the global log-variance (True) or keep it fixed.
    init_logvar: gaussian only; initial (or fixed) global log-variance. -4 is sigma ~ 0.14, on
        the scale of intensity noise in [0, 1]; a fixed large value gives blurry samples.
    beta: weight of the KL term (1 = the true ELBO; beta-VAE otherwise).
    kl_warmup: fraction of the training budget over which the KL weight rises linearly from 0
        to beta (KL annealing); 0 uses beta from the first step.
    num_classes: > 0 makes a conditional VAE with one-hot labels to encoder and decoder.
    decoder_sampling: at generation, False returns the decoder mean (the usual choice for
        images), True draws x ~ p(x|z) (Bernoulli: binary images; Gaussian: clamped to [0, 1]).
    latent_channels: 0 for a vector latent of size latent_dim; > 0 for a spatial latent
        (latent_channels, s, s), s the bottom side of the conv stack (7 at 28 px, 4 at 32 px),
        the first stage of latent diffusion; latent_dim is then unused. Unconditional only.
    """

    channels: int = 1
    image_size: int = 28
    latent_dim: int = 32
    widths: tuple[int, ...] = (32, 64)
    likelihood: str = "bernoulli"
    learn_logvar: bool = True
    init_logvar: float = -4.0
    beta: float = 1.0
    kl_warmup: float = 0.0
    num_classes: int = 0
    decoder_sampling: bool = False
    binarize: bool = False
    latent_channels: int = 0


class VAE(nn.Module):
    """(Conditional) VAE with a conv encoder/decoder and a N(0, I) prior."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        if config.likelihood not in ("bernoulli", "gaussian"):
            raise GenlabError(
                f"likelihood must be 'bernoulli' or 'gaussian', got {config.likelihood!r}"
            )
        if config.num_classes < 0 or config.latent_dim < 1 or config.latent_channels < 0:
            raise GenlabError("num_classes and latent_channels must be >= 0 and latent_dim >= 1")
        if config.latent_channels and config.num_classes:
            raise GenlabError(
                "a spatial latent VAE is unconditional: set num_classes=0 or latent_channels=0"
            )
        if config.binarize and config.likelihood != "bernoulli":
            raise GenlabError("--binarize needs the Bernoulli likelihood (--likelihood bernoulli)")
        self.config = config
        K, D, c = config.num_classes, config.latent_dim, config.latent_channels
        if c:  # spatial latent (c, s, s): conv stats on the bottom map, conv input to the decoder
            self.encoder = ConvEncoder(config.channels, config.image_size, config.widths, True)
            self.to_stats = nn.Conv2d(self.encoder.out_channels, 2 * c, 3, padding=1)
            self.decoder = ConvDecoder(c, config.channels, config.image_size, config.widths, True)
        else:
            self.encoder = ConvEncoder(config.channels, config.image_size, config.widths)
            self.to_stats = nn.Linear(self.encoder.out_features + K, 2 * D)  # -> (mu, logvar)
            self.decoder = ConvDecoder(D + K, config.channels, config.image_size, config.widths)
        logvar = torch.tensor(float(config.init_logvar))
        if config.likelihood == "gaussian" and config.learn_logvar:
            self.x_logvar = nn.Parameter(logvar)  # global log-variance of p(x|z)
        else:
            self.register_buffer("x_logvar", logvar)

    @property
    def latent_shape(self) -> tuple[int, ...]:
        """Shape of one z: (latent_dim,) or (latent_channels, s, s)."""
        c = self.config.latent_channels
        if c:
            side = self.encoder.side
            return (c, side, side)
        return (self.config.latent_dim,)

    # -- labels -------------------------------------------------------------------------------

    def _one_hot(self, y: torch.Tensor | None, n: int, device: torch.device) -> torch.Tensor | None:
        """One-hot (n, K) for a conditional model (None otherwise); y None cycles the classes."""
        K = self.config.num_classes
        if K == 0:
            return None
        if y is None:
            y = torch.arange(n, device=device) % K
        y = torch.as_tensor(y, device=device).long().reshape(-1)
        if y.shape[0] != n or y.min() < 0 or y.max() >= K:
            raise GenlabError(
                f"a conditional VAE needs {n} labels in [0, {K}), got {y.shape[0]} labels "
                f"from {y.min().item()} to {y.max().item()} (unlabeled data has -1)"
            )
        return F.one_hot(y, K).float()

    # -- encoder, reparameterization, decoder -------------------------------------------------

    def encode_dist(
        self, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Parameters of q(z|x): x (B, C, H, W) in [0, 1] -> (mu, logvar), each (B, *latent_shape).

        A conditional model needs `y` (B,) here: the label is data, not something to cycle.
        """
        h = self.encoder(x)  # (B, F), or (B, widths[-1], s, s) for a spatial latent
        if self.config.num_classes:
            if y is None:
                raise GenlabError("a conditional VAE needs labels y to encode images")
            h = torch.cat([h, self._one_hot(y, x.shape[0], x.device)], 1)
        mu, logvar = self.to_stats(h).chunk(2, dim=1)
        return mu, logvar

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Posterior mean mu (B, *latent_shape), the code the latent tools use."""
        return self.encode_dist(x, y)[0]

    @staticmethod
    def reparameterize(
        mu: torch.Tensor,
        logvar: torch.Tensor,
        generator: torch.Generator | None = None,
        eps: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """z = mu + exp(logvar / 2) * eps, eps ~ N(0, I) (drawn with `generator` unless given):
        differentiable in mu and logvar."""
        eps = _randn(mu.shape, generator, mu) if eps is None else eps.to(mu)
        return mu + torch.exp(0.5 * logvar) * eps

    def decode_logits(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Decoder output before the sigmoid: z (B, *latent_shape) -> (B, C, H, W)."""
        y_onehot = self._one_hot(y, z.shape[0], z.device)
        return self.decoder(z if y_onehot is None else torch.cat([z, y_onehot], 1))

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Mean of p(x|z) in [0, 1], (B, C, H, W); a conditional model cycles classes if y=None."""
        return torch.sigmoid(self.decode_logits(z, y))

    def log_px_given_z(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """log p(x|z) summed over pixels: x, logits (B, C, H, W) -> (B,)."""
        if self.config.likelihood == "bernoulli":
            log_px = -F.binary_cross_entropy_with_logits(logits, x, reduction="none")
        else:
            log_px = gaussian_log_prob(x, torch.sigmoid(logits), self.x_logvar)
        return log_px.flatten(1).sum(1)

    # -- objectives ---------------------------------------------------------------------------

    def elbo(
        self,
        x: torch.Tensor,
        y: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        eps: torch.Tensor | None = None,
    ) -> ELBO:
        """Per-example ELBO in nats with a single-sample Monte-Carlo reconstruction term (the
        noise eps (B, *latent_shape) drawn with `generator` unless given)."""
        mu, logvar = self.encode_dist(x, y)
        z = self.reparameterize(mu, logvar, generator, eps)
        recon = self.log_px_given_z(x, self.decode_logits(z, y))  # E_q[log p(x|z)], (B,)
        kl = kl_standard_normal(mu.flatten(1), logvar.flatten(1))  # (B,)
        return ELBO(recon - kl, recon, kl)

    def loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mean over the batch of -(recon - beta_t * kl), beta_t = beta * kl_weight(progress);
        logs recon, kl and elbo (nats/image)."""
        y = batch.y if self.config.num_classes else None
        x = batch.x
        if self.config.binarize:  # dynamic binarization: fresh bits every step
            x = (batch.shard.rand(x.shape, device=x.device) < x).to(x.dtype)
        eps = batch.shard.randn((x.shape[0], *self.latent_shape), device=x.device)
        out = self.elbo(x, y, eps=eps)
        beta = self.config.beta * kl_weight(batch.progress, self.config.kl_warmup)
        loss = -(out.recon - beta * out.kl).mean()
        logs = {"recon": out.recon.mean(), "kl": out.kl.mean(), "elbo": out.elbo.mean()}
        return loss, {name: value.detach() for name, value in logs.items()}

    def iwae_log_likelihood(
        self,
        x: torch.Tensor,
        y: torch.Tensor | None = None,
        k: int = 64,
        *,
        chunk_size: int = 16,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Importance-weighted estimate of log p(x) (Burda et al. 2016), (B,) in nats.

        log p(x) >= log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x), z_i ~ q(z|x); the bound tightens
        as k grows and k = 1 is the ELBO. Decodes `chunk_size` samples per image at a time, so
        memory is that of a batch of B * chunk_size images whatever k is.
        """
        if k < 1 or chunk_size < 1:
            raise GenlabError(f"k and chunk_size must be >= 1, got k={k}, chunk_size={chunk_size}")
        mu, logvar = self.encode_dist(x, y)  # (B, *latent_shape); a conditional model checks y
        B = x.shape[0]
        ones = (1,) * (mu.ndim - 1)
        log_w = []
        for start in range(0, k, chunk_size):
            c = min(chunk_size, k - start)
            mu_c, logvar_c = mu.repeat(c, *ones), logvar.repeat(c, *ones)  # (c*B, ...), by sample
            z = self.reparameterize(mu_c, logvar_c, generator)
            y_c = None if y is None else torch.as_tensor(y, device=x.device).repeat(c)
            x_c = x.repeat(c, 1, 1, 1)
            log_px = self.log_px_given_z(x_c, self.decode_logits(z, y_c))  # log p(x|z_i)
            zeros = torch.zeros_like(z)
            log_pz = gaussian_log_prob(z, zeros, zeros).flatten(1).sum(1)  # log p(z_i)
            log_qz = gaussian_log_prob(z, mu_c, logvar_c).flatten(1).sum(1)  # log q(z_i|x)
            log_w.append((log_px + log_pz - log_qz).view(c, B))
        # eq. 8 (Burda et al.): L_k = log (1/k) sum_i w_i, computed stably with logsumexp
        return torch.logsumexp(torch.cat(log_w, 0), dim=0) - math.log(k)

    # -- generation ---------------------------------------------------------------------------

    @torch.no_grad()
    def sample(
        self, n: int, *, generator: torch.Generator | None = None, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Decode z ~ N(0, I) of shape (n, *latent_shape) drawn with `generator`.

        Args:
            n: number of images.
            generator: source of all randomness (z and, with decoder_sampling, x ~ p(x|z)).
            y: (n,) int class ids for a conditional model; None cycles 0, 1, ..., K-1, 0, ...
                An unconditional model ignores y.

        Returns:
            (n, C, H, W) in [0, 1]: the decoder mean, or a draw from p(x|z) when
            `config.decoder_sampling` (Bernoulli: 0/1 images; Gaussian: clamped to [0, 1]).
        """
        device = next(self.parameters()).device
        z = _randn((n, *self.latent_shape), generator, torch.empty(0, device=device))
        mean = self.decode(z, y if self.config.num_classes else None)
        if not self.config.decoder_sampling:
            return mean
        if self.config.likelihood == "bernoulli":
            return (_rand(mean.shape, generator, mean) < mean).to(mean.dtype)
        sigma = torch.exp(0.5 * self.x_logvar)
        return (mean + sigma * _randn(mean.shape, generator, mean)).clamp(0, 1)


def _randn(shape, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """N(0, I) noise drawn on the generator's device, returned on `like`'s device and dtype."""
    device = generator.device if generator is not None else like.device
    return torch.randn(shape, generator=generator, device=device).to(like.device, like.dtype)


def _rand(shape, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """U(0, 1) noise drawn like `_randn`."""
    device = generator.device if generator is not None else like.device
    return torch.rand(shape, generator=generator, device=device).to(like.device, like.dtype)


@torch.inference_mode()
def evaluate_nll(
    model: VAE,
    images: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    k: int = 64,
    batch_size: int = 256,
    generator: torch.Generator | None = None,
) -> NLLResult:
    """Test-set negative ELBO and IWAE negative log-likelihood, per image and per dimension.

    With a Bernoulli likelihood on grayscale intensities in [0, 1] these numbers are the course
    convention (binary cross-entropy against soft targets), not a discrete likelihood of the
    8-bit data; with a Gaussian likelihood on continuous [0, 1] data they are a density, and
    can be negative. Both are comparable only between models with the same likelihood.

    Args:
        model: a VAE (put in eval mode here).
        images: (N, C, H, W) uint8.
        labels: (N,) int64 class ids, needed by a conditional model.
        k: importance samples per image for the IWAE bound.
        batch_size: images per forward pass (the IWAE decodes batch_size * 16 at a time).
        generator: makes the Monte-Carlo estimates reproducible.

    Returns:
        NLLResult with means over the N images.
    """
    model.eval()
    device = next(model.parameters()).device
    D = images[0].numel()
    neg_elbo, nll = 0.0, 0.0
    for start in range(0, images.shape[0], batch_size):
        x = images[start : start + batch_size].to(device).float().div_(255.0)
        y = None
        if model.config.num_classes:
            if labels is None:
                raise GenlabError("a conditional VAE needs the test labels to evaluate NLL")
            y = labels[start : start + batch_size].to(device)
        neg_elbo -= model.elbo(x, y, generator=generator).elbo.sum().item()
        nll -= model.iwae_log_likelihood(x, y, k=k, generator=generator).sum().item()
    n = images.shape[0]
    bits = D * math.log(2)
    return NLLResult(neg_elbo / n, nll / n, neg_elbo / n / bits, nll / n / bits, n)


# ------------------------------------------------------------------------------ the family record


def configure(options: dict, data) -> Configured:
    """A VAE for the training images' shape; --conditional takes the data's classes."""
    k = num_classes(data, "vae --conditional") if options.get("conditional") else 0
    refuse_binarized_colour(options, data)
    return Configured(image_config(VAEConfig, options, data, num_classes=k))


FAMILY = Family(
    name="vae",
    summary="Variational autoencoder (also conditional, or with a spatial latent for ldm).",
    config=VAEConfig,
    model=VAE,
    configure=configure,
    options=(
        *image_options(
            VAEConfig,
            latent_dim={"min": 1, "max": 4096},
            widths={"min": 1, "max": 1024},
            likelihood={"choices": ("bernoulli", "gaussian")},
            init_logvar={"min": -20.0, "max": 20.0},
            beta={"max": 1e4},
            kl_warmup={"max": 1.0},
            latent_channels={"max": 256},
        ),
        CONDITIONAL,
    ),
)
