"""Convolutional autoencoder: x -> encoder -> z -> decoder -> x_hat.

The deterministic autoencoder (Hinton & Salakhutdinov 2006, "Reducing the dimensionality of data
with neural networks") learns a low-dimensional code `z` by reconstruction alone. It has no prior
over `z`, so it is not a generative model: `sample` draws `z` from a diagonal Gaussian fitted to the
codes seen in training, and the samples are poor by design (the codes fill an irregular region of
latent space and most Gaussian draws land where the decoder was never trained). That is the
lesson that motivates the VAE in `genlab.models.vae`.

The conv stack is shared with the VAE: `conv_levels` picks the number of stride-2 levels from the
image size, `ConvEncoder` maps an image to a flat feature vector and `ConvDecoder` maps a vector
back to per-pixel logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genlab.data import Batch, Shard
from genlab.errors import GenlabError
from genlab.family import Configured, Family, image_config, image_options


def conv_levels(image_size: int) -> tuple[int, int]:
    """Number of stride-2 levels and the side of the bottom feature map for `image_size`.

    The image is halved until its side is 7 (28 -> 14 -> 7) or 4 (32 -> 16 -> 8 -> 4,
    64 -> ... -> 4), so every supported size ends on a small map the linear bottleneck can read.

    Returns:
        (levels, bottom side), e.g. (2, 7) for 28 and (3, 4) for 32.

    Raises:
        GenlabError: the size does not halve down to 7 or 4.
    """
    side, levels = image_size, 0
    while side % 2 == 0 and side > 7:
        side, levels = side // 2, levels + 1
    if levels == 0 or side not in (4, 7):
        raise GenlabError(
            f"unsupported image_size {image_size}: use 7 or 4 times a power of two "
            "(e.g. 28, 32, 64)"
        )
    return levels, side


def level_widths(widths: tuple[int, ...], levels: int) -> list[int]:
    """Channels after each stride-2 level: `widths`, with its last entry repeated as needed."""
    if not widths or min(widths) < 1:
        raise GenlabError(f"widths must be positive channel counts, got {widths}")
    return [widths[min(i, len(widths) - 1)] for i in range(levels)]


class ConvEncoder(nn.Module):
    """Stride-2 4x4 convs with SiLU: (B, C, S, S) -> (B, widths[-1] * s * s), s the bottom side.

    With `spatial=True` the bottom map is kept, not flattened, and a 3x3 conv with SiLU is
    added on it: (B, C, S, S) -> (B, widths[-1], s, s), for a spatial latent.
    """

    def __init__(
        self, channels: int, image_size: int, widths: tuple[int, ...], spatial: bool = False
    ):
        super().__init__()
        levels, side = conv_levels(image_size)
        chans = [channels, *level_widths(widths, levels)]
        layers: list[nn.Module] = []
        for c_in, c_out in zip(chans[:-1], chans[1:], strict=True):
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.SiLU()]
        if spatial:
            layers += [nn.Conv2d(chans[-1], chans[-1], 3, padding=1), nn.SiLU()]
        self.net = nn.Sequential(*layers) if spatial else nn.Sequential(*layers, nn.Flatten())
        self.out_channels, self.side = chans[-1], side
        self.out_features = chans[-1] * side * side

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConvDecoder(nn.Module):
    """Linear to the bottom map, then stride-2 4x4 transposed convs: (B, D) -> logits (B, C, S, S).

    With `spatial=True` the input is already a bottom map (B, in_features, s, s) and two 3x3
    convs with SiLU (in_features -> widths[-1] -> widths[-1]) replace the linear layer.
    The last transposed conv writes the C output channels directly, with no extra
    full-resolution conv: on a CPU the full-resolution layers are the costly ones.
    """

    def __init__(
        self,
        in_features: int,
        channels: int,
        image_size: int,
        widths: tuple[int, ...],
        spatial: bool = False,
    ):
        super().__init__()
        levels, side = conv_levels(image_size)
        chans = [channels, *level_widths(widths, levels)]
        if spatial:  # the input layer, named fc in both cases
            w = chans[-1]
            self.fc = nn.Sequential(
                nn.Conv2d(in_features, w, 3, padding=1), nn.SiLU(),
                nn.Conv2d(w, w, 3, padding=1), nn.SiLU(),
            )  # fmt: skip
        else:
            self.fc = nn.Sequential(nn.Linear(in_features, chans[-1] * side * side), nn.SiLU())
        self.bottom = (chans[-1], side, side)
        layers: list[nn.Module] = []
        for c_in, c_out in zip(chans[:0:-1], chans[-2::-1], strict=True):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1), nn.SiLU()]
        self.net = nn.Sequential(*layers[:-1])  # no activation on the logits

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(self.fc(h).view(-1, *self.bottom))


@dataclass(frozen=True)
class AutoencoderConfig:
    """Attributes:
    channels: image channels (1 grayscale, 3 RGB).
    image_size: image side in pixels; 7 or 4 times a power of two (28, 32, 64).
    latent_dim: size of the code z. 16 by default: small enough to be a real bottleneck,
        large enough for recognisable reconstructions; 2 gives a latent map one can plot
        (dimensionality reduction) at the cost of blurry reconstructions.
    widths: channels after each stride-2 level, shallow to deep; the last entry repeats when
        the image needs more levels than listed (28 needs 2, 32 needs 3, 64 needs 4).
    recon_loss: "bce" (binary cross-entropy on intensities in [0, 1]) or "mse"; both summed
        over pixels and averaged over the batch.
    latent_momentum: momentum of the running mean/std of z kept for `sample`.
    """

    channels: int = 1
    image_size: int = 28
    latent_dim: int = 16
    widths: tuple[int, ...] = (32, 64)
    recon_loss: str = "bce"
    latent_momentum: float = 0.01


class Autoencoder(nn.Module):
    """Deterministic convolutional autoencoder with a Gaussian fitted to its codes for sampling."""

    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        if config.recon_loss not in ("bce", "mse"):
            raise GenlabError(f"recon_loss must be 'bce' or 'mse', got {config.recon_loss!r}")
        self.config = config
        self.encoder = ConvEncoder(config.channels, config.image_size, config.widths)
        self.to_z = nn.Linear(self.encoder.out_features, config.latent_dim)
        self.decoder = ConvDecoder(
            config.latent_dim, config.channels, config.image_size, config.widths
        )
        # Running moments of the codes, updated in `loss` during training; used by `sample`.
        self.register_buffer("z_mean", torch.zeros(config.latent_dim))
        self.register_buffer("z_std", torch.ones(config.latent_dim))

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Code of each image: x (B, C, H, W) in [0, 1] -> z (B, latent_dim). `y` is ignored."""
        return self.to_z(self.encoder(x))

    def decode_logits(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Pre-sigmoid reconstruction: z (B, latent_dim) -> (B, C, H, W)."""
        return self.decoder(z)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Reconstruction in [0, 1]: z (B, latent_dim) -> (B, C, H, W). `y` is ignored."""
        return torch.sigmoid(self.decode_logits(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruct x (B, C, H, W) -> (B, C, H, W) in [0, 1]."""
        return self.decode(self.encode(x))

    def loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Reconstruction loss per image (summed over pixels), averaged over the batch."""
        x = batch.x
        z = self.encode(x)  # (B, latent_dim)
        logits = self.decode_logits(z)  # (B, C, H, W)
        if self.config.recon_loss == "bce":
            per_pixel = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
        else:
            per_pixel = (torch.sigmoid(logits) - x).square()
        recon = per_pixel.flatten(1).sum(1).mean()
        if self.training:
            self._update_latent_stats(z.detach(), batch.shard)
        return recon, {"recon": recon.detach()}

    @torch.no_grad()
    def _update_latent_stats(self, z: torch.Tensor, shard: Shard = Shard()) -> None:
        """Move the running fit towards the codes of the (global) batch."""
        m = self.config.latent_momentum
        z = z.to(self.z_mean.dtype)  # under bf16 autocast z is bf16; the statistics are not
        mean, std = shard.mean_std(z)
        self.z_mean.lerp_(mean, m)
        if z.shape[0] * shard.world > 1:
            self.z_std.lerp_(std, m)

    @torch.no_grad()
    def sample(
        self, n: int, *, generator: torch.Generator | None = None, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Decode z ~ N(z_mean, diag(z_std^2)), the running fit to training codes.

        Poor by design: an autoencoder has no prior, and most of this Gaussian's mass lies where
        the decoder never saw a code. `y` is ignored (the autoencoder is unconditional).

        Returns:
            (n, C, H, W) in [0, 1].
        """
        device = generator.device if generator is not None else self.z_mean.device
        eps = torch.randn(n, self.config.latent_dim, generator=generator, device=device)
        eps = eps.to(self.z_mean.device)  # drawn where the generator lives, then moved
        return self.decode(self.z_mean + self.z_std * eps)


# ------------------------------------------------------------------------------ the family record


def configure(options: dict, data) -> Configured:
    """An autoencoder for the training images' shape."""
    return Configured(image_config(AutoencoderConfig, options, data))


FAMILY = Family(
    name="ae",
    summary="Convolutional autoencoder: dimensionality reduction (genlab embed).",
    config=AutoencoderConfig,
    model=Autoencoder,
    configure=configure,
    options=image_options(
        AutoencoderConfig,
        latent_dim={"min": 1, "max": 4096},
        widths={"min": 1, "max": 1024},
        recon_loss={"choices": ("bce", "mse")},
        latent_momentum={"min_open": True, "max": 1.0},
    ),
)
