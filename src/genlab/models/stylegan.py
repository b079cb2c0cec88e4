"""StyleGAN2 (Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN"), sized
for a CPU.

Generator G = synthesis(mapping(z)):
- Mapping network f: z -> w, a few fully connected layers on the normalised z, with a 100x lower
  learning rate (lr_mul 0.01). One w per synthesis layer: ws (B, num_ws, w_dim), all equal
  unless styles are mixed.
- Synthesis: a learned constant (C, s, s), then per resolution: bilinear 2x upsampling,
  modulated + demodulated 3x3 convolutions (eq. 1-3) whose per-sample styles s = A(w) come from
  an affine map of w, per-pixel noise B * n with a learned strength per layer, bias and leaky
  ReLU. Each resolution has a 1x1 "toRGB" (modulated, not demodulated) whose output is added to
  the upsampled image of the resolutions below (skip connections, Fig. 7b).
- Modulation: w'_ijk = s_i w_ijk; demodulation: w''_ijk = w'_ijk / sqrt(sum_ik w'_ijk^2 + eps).
  `modulated_conv2d` computes it as one grouped convolution (the paper's form) or, by default,
  by scaling the activations: conv(x * s, w) * d, with d_j = (sum_i s_i^2 sum_k w_ijk^2)^-1/2:
  the same numbers, one shared kernel, 1.6x faster per training step on the 2-core CPU
  (bench/stylegan_speed.py: 121 against 193 ms at batch 32, bf16).
- Equalized learning rate (Karras et al. 2018): weights are N(0, 1) and scaled by
  1 / sqrt(fan_in) at run time.

Discriminator D: fromRGB, residual blocks (two 3x3 convs with 2x average-pool downsampling, a 1x1
skip, summed and scaled by 1/sqrt 2), minibatch standard deviation (Karras et al. 2018), a 3x3
conv and two linear layers.

Training (`genlab.training.gan.StyleGANStep`): non-saturating loss, lazy R1 on reals (every
r1_every D steps, scaled by r1_every), style-mixing regularisation (two z's, a random crossover
layer, with probability `style_mixing`), an EMA generator, a tracked mean w_avg for the
truncation trick w' = w_avg + psi (w - w_avg), and optional DiffAugment (Zhao et al. 2020):
the same differentiable colour / translation / cutout augmentation of every image D sees, real or
fake, for small folders.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genlab.data.types import Shard
from genlab.errors import GenlabError
from genlab.family import Configured, Family, image_config, image_options
from genlab.models.autoencoder import conv_levels, level_widths

SQRT2 = math.sqrt(2.0)
AUGMENTATIONS = ("color", "translation", "cutout")


# -- the maths the family rests on -------------------------------------------------------------


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    style: torch.Tensor,
    demodulate: bool = True,
    padding: int = 1,
    eps: float = 1e-8,
    grouped: bool = False,
) -> torch.Tensor:
    """Convolve each sample with its own modulated (and demodulated) kernel.

    Args:
        x: (B, C_in, H, W) inputs.
        weight: (C_out, C_in, k, k) the shared kernel.
        style: (B, C_in) the per-sample scales s.
        demodulate: rescale each sample's output channels to unit expected norm.
        grouped: build the B kernels and run one grouped convolution (the paper's form);
            otherwise scale the activations instead, conv(x * s, w) * d (same result, faster).

    Returns:
        (B, C_out, H', W').
    """
    b, c_in, h, w = x.shape
    c_out = weight.shape[0]
    if not grouped:
        out = F.conv2d(x * style[:, :, None, None].to(x.dtype), weight.to(x.dtype), padding=padding)
        if demodulate:  # sum_ik (s_i w_jik)^2 = sum_i s_i^2 (sum_k w_jik^2): (B, C_out)
            d = torch.rsqrt(style.float().square() @ weight.float().square().sum((2, 3)).T + eps)
            out = out * d[:, :, None, None].to(out.dtype)
        return out
    wt = weight[None] * style[:, None, :, None, None]  # (B, C_out, C_in, k, k)
    if demodulate:
        wt = wt * torch.rsqrt(wt.pow(2).sum(dim=(2, 3, 4), keepdim=True) + eps)
    out = F.conv2d(
        x.reshape(1, b * c_in, h, w),
        wt.reshape(b * c_out, c_in, *weight.shape[2:]).to(x.dtype),
        padding=padding,
        groups=b,
    )
    return out.reshape(b, c_out, *out.shape[2:])


def r1_penalty(real: torch.Tensor, logits: torch.Tensor, gamma: float) -> torch.Tensor:
    """gamma / 2 * mean over the batch of ||grad_x D(x)||^2, from D's logits on `real` (which
    must require grad); differentiable (create_graph), for the discriminator's loss."""
    (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
    grad = grad.to(torch.promote_types(grad.dtype, torch.float32))  # bf16 -> fp32, fp64 stays
    return 0.5 * gamma * grad.pow(2).flatten(1).sum(1).mean()


def truncate(w: torch.Tensor, w_avg: torch.Tensor, psi: float) -> torch.Tensor:
    """The truncation trick: w' = w_avg + psi (w - w_avg); psi = 0 gives w_avg for every w."""
    return torch.lerp(w_avg.to(w.dtype), w, psi)


def mix_styles(w_coarse: torch.Tensor, w_fine: torch.Tensor, cutoff: torch.Tensor) -> torch.Tensor:
    """Per-layer styles: layers below `cutoff` (the coarse, low-resolution ones) from w_coarse,
    the rest from w_fine.

    Args:
        w_coarse, w_fine: (B, w_dim) or (B, num_ws, w_dim).
        cutoff: (B,) or a scalar tensor of layer indices; `num_ws` gives all-coarse.

    Returns:
        (B, num_ws, w_dim), num_ws from whichever input has it (else cutoff's maximum).
    """
    num_ws = next((w.shape[1] for w in (w_coarse, w_fine) if w.ndim == 3), None)
    if num_ws is None:
        raise GenlabError("mix_styles needs one input of shape (B, num_ws, w_dim)")
    wc = w_coarse if w_coarse.ndim == 3 else w_coarse[:, None].expand(-1, num_ws, -1)
    wf = w_fine if w_fine.ndim == 3 else w_fine[:, None].expand(-1, num_ws, -1)
    layer = torch.arange(num_ws, device=wc.device)[None]  # (1, num_ws)
    coarse = layer < cutoff.reshape(-1, 1).to(wc.device)  # (B or 1, num_ws)
    return torch.where(coarse[..., None], wc, wf)


def diff_augment(x: torch.Tensor, policy: tuple[str, ...], shard: Shard = Shard()) -> torch.Tensor:
    """DiffAugment (Zhao et al. 2020): differentiable augmentations of D's inputs in [0, 1].

    color: brightness + U(-0.5, 0.5), saturation x U(0, 2) (RGB), contrast x U(0.5, 1.5);
    translation: integer shifts up to 1/8 of the side, zero-filled; cutout: one zeroed square of
    half the side. Every random draw goes through `shard` (global RNG, exact resume).
    """
    b, c, h, w = x.shape
    dev = x.device
    for p in policy:
        if p == "color":
            x = x + (shard.rand((b, 1, 1, 1), device=dev) - 0.5).to(x.dtype)
            if c == 3:
                m = x.mean(1, keepdim=True)
                x = (x - m) * (2 * shard.rand((b, 1, 1, 1), device=dev)).to(x.dtype) + m
            m = x.mean((1, 2, 3), keepdim=True)
            x = (x - m) * (shard.rand((b, 1, 1, 1), device=dev) + 0.5).to(x.dtype) + m
        elif p == "translation":
            r = max(1, int(h * 0.125 + 0.5))
            sy = shard.randint(-r, r + 1, (b, 1, 1), device=dev)
            sx = shard.randint(-r, r + 1, (b, 1, 1), device=dev)
            gb, gy, gx = torch.meshgrid(
                torch.arange(b, device=dev),
                torch.arange(h, device=dev),
                torch.arange(w, device=dev),
                indexing="ij",
            )
            gy = (gy + sy + 1).clamp(0, h + 1)  # index into the zero-padded image
            gx = (gx + sx + 1).clamp(0, w + 1)
            padded = F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)  # (B, H + 2, W + 2, C)
            x = padded[gb, gy, gx].permute(0, 3, 1, 2)
        elif p == "cutout":
            size = int(h * 0.5 + 0.5)
            oy = shard.randint(0, h + (1 - size % 2), (b, 1, 1), device=dev) - size // 2
            ox = shard.randint(0, w + (1 - size % 2), (b, 1, 1), device=dev) - size // 2
            ys = torch.arange(h, device=dev).view(1, h, 1)
            xs = torch.arange(w, device=dev).view(1, 1, w)
            inside = (ys >= oy) & (ys < oy + size) & (xs >= ox) & (xs < ox + size)
            x = x * (~inside)[:, None].to(x.dtype)
        else:
            raise GenlabError(f"unknown augmentation {p!r}; known: {', '.join(AUGMENTATIONS)}")
    return x


def minibatch_std(x: torch.Tensor, group: int) -> torch.Tensor:
    """Append one channel: the standard deviation of each feature over a group of samples,
    averaged (Karras et al. 2018, 3). Groups are samples i, i + B/G, ...; G is the largest
    divisor of B not above `group`."""
    b, c, h, w = x.shape
    g = min(group, b)
    while b % g:
        g -= 1
    y = x.float().reshape(g, -1, c, h, w)
    y = (y - y.mean(0)).square().mean(0).add(1e-8).sqrt().mean((1, 2, 3))  # (B / G,)
    y = y.reshape(-1, 1, 1, 1).repeat(g, 1, h, w)  # (B, 1, H, W)
    return torch.cat([x, y.to(x.dtype)], 1)


def lrelu(x: torch.Tensor) -> torch.Tensor:
    """Leaky ReLU (0.2) with gain sqrt 2, which keeps unit variance through the layers."""
    return F.leaky_relu(x, 0.2) * SQRT2


# -- layers ------------------------------------------------------------------------------------


class EqualLinear(nn.Module):
    """Linear layer with an equalized learning rate: weight N(0, 1) / lr_mul, scaled at run
    time by lr_mul / sqrt(fan_in); bias scaled by lr_mul (lr_mul < 1 slows the layer down)."""

    def __init__(self, c_in: int, c_out: int, bias_init: float = 0.0, lr_mul: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in) / lr_mul)
        self.bias = nn.Parameter(torch.full((c_out,), float(bias_init) / lr_mul))
        self.w_gain, self.lr_mul = lr_mul / math.sqrt(c_in), lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.w_gain, self.bias * self.lr_mul)


class EqualConv2d(nn.Module):
    """Conv layer with an equalized learning rate ('same' padding)."""

    def __init__(self, c_in: int, c_out: int, k: int, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, k, k))
        self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None
        self.gain, self.padding = 1.0 / math.sqrt(c_in * k * k), k // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.gain, self.bias, padding=self.padding)


class StyledConv(nn.Module):
    """A modulated conv with its affine style map A, per-pixel noise, bias and activation.

    toRGB layers are the same with k = 1 and no demodulation, noise or activation (their style
    is scaled by 1 / sqrt(fan_in) instead of their weight, as in StyleGAN2).
    """

    def __init__(self, c_in: int, c_out: int, w_dim: int, k: int = 3, rgb: bool = False):
        super().__init__()
        self.affine = EqualLinear(w_dim, c_in, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(c_out, c_in, k, k))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.noise_strength = None if rgb else nn.Parameter(torch.zeros(()))
        self.gain, self.rgb, self.padding = 1.0 / math.sqrt(c_in * k * k), rgb, k // 2

    def forward(
        self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        s = self.affine(w)  # (B, C_in)
        if self.rgb:
            h = modulated_conv2d(x, self.weight, s * self.gain, demodulate=False, padding=0)
            return h + self.bias[:, None, None].to(h.dtype)
        h = modulated_conv2d(x, self.weight, s, demodulate=True, padding=self.padding)
        if noise is not None:
            h = h + self.noise_strength.to(h.dtype) * noise.to(h.dtype)
        return lrelu(h + self.bias[:, None, None].to(h.dtype))


def _up(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


# -- config and networks -----------------------------------------------------------------------


@dataclass(frozen=True)
class StyleGANConfig:
    """Attributes:
    channels: image channels (1 grayscale, 3 RGB).
    image_size: image side; 7 or 4 times a power of two (28, 32, 64).
    latent_dim: size of z and of w.
    mapping_layers: fully connected layers of the mapping network (8 in the paper).
    mapping_lr_mul: the mapping network's learning-rate multiplier (0.01 in the paper).
    g_widths: G's channels at each resolution from the full-resolution side inwards (the
        bottom 7x7 or 4x4 map included); the last entry repeats as needed.
    d_widths: D's channels at each resolution, listed the same way. (16, 32, 64): at 3 minutes
        on 2 cores it made 1,774 steps against 1,204 for (32, 64, 128), and FD 307.6 against
        347.4 (bench/quality_runs.sh).
    loss: "ns", the non-saturating loss (the only one offered: R1 is its regulariser).
    r1_gamma: R1 weight gamma, on images centred to [-1, 1] as in the paper.
    r1_every: lazy regularisation: R1 every this many D steps, scaled by it.
    style_mixing: probability that a generated batch sample mixes the styles of two z's.
    w_avg_beta: decay of the tracked mean w (the truncation trick's centre).
    diffaug: DiffAugment policy, comma-separated from color, translation, cutout ("" none).
    mbstd_group: group size of the minibatch standard deviation.
    n_critic: D steps per G step.
    lr_g, lr_d, betas: Adam of G and D (the paper: 0.002, (0, 0.99)).
    num_classes: 0 (this generator is unconditional).
    """

    channels: int = 1
    image_size: int = 28
    latent_dim: int = 128
    mapping_layers: int = 4
    mapping_lr_mul: float = 0.01
    g_widths: tuple[int, ...] = (32, 64, 128)
    d_widths: tuple[int, ...] = (16, 32, 64)
    loss: str = "ns"
    r1_gamma: float = 0.1
    r1_every: int = 16
    style_mixing: float = 0.9
    w_avg_beta: float = 0.995
    diffaug: str = ""
    mbstd_group: int = 4
    n_critic: int = 1
    lr_g: float = 2e-3
    lr_d: float = 2e-3
    betas: tuple[float, float] = (0.0, 0.99)
    num_classes: int = 0


class MappingNetwork(nn.Module):
    """z (B, D) -> w (B, D): normalise z to unit second moment, then `layers` EqualLinear +
    lrelu with the slow learning rate; keeps the running mean w_avg for truncation."""

    def __init__(self, dim: int, layers: int, lr_mul: float):
        super().__init__()
        self.layers = nn.ModuleList(EqualLinear(dim, dim, lr_mul=lr_mul) for _ in range(layers))
        self.register_buffer("w_avg", torch.zeros(dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = z * torch.rsqrt(z.float().square().mean(1, keepdim=True) + 1e-8).to(z.dtype)
        for layer in self.layers:
            x = lrelu(layer(x))
        return x


class Synthesis(nn.Module):
    """ws (B, num_ws, w_dim) and noise -> images (B, C, S, S), about [0, 1] (unclamped).

    Layer i of `convs` reads ws[:, i]; the toRGB of a resolution reads the w of the conv after
    it (as in StyleGAN2), so num_ws = number of convs + 1. Coarse layers come first.
    """

    def __init__(self, config: StyleGANConfig):
        super().__init__()
        levels, side = conv_levels(config.image_size)
        chans = level_widths(config.g_widths, levels + 1)[::-1]  # bottom -> full resolution
        D = config.latent_dim
        self.const = nn.Parameter(torch.randn(chans[0], side, side))
        convs, rgbs, sides, conv_side = [], [], [], []
        for i, c in enumerate(chans):
            res = side * 2**i
            if i > 0:  # the first conv of a resolution reads the upsampled map
                convs.append(StyledConv(chans[i - 1], c, D))
                conv_side.append(res)
            convs.append(StyledConv(c, c, D))
            conv_side.append(res)
            rgbs.append(StyledConv(c, config.channels, D, k=1, rgb=True))
            sides.append(res)
        self.convs, self.rgbs = nn.ModuleList(convs), nn.ModuleList(rgbs)
        self.noise_sides = tuple(conv_side)  # one noise map per conv
        self.num_ws = len(convs) + 1

    def noise_shapes(self) -> list[tuple[int, int, int]]:
        """(1, H, W) of each conv's noise input, coarse to fine."""
        return [(1, s, s) for s in self.noise_sides]

    def forward(self, ws: torch.Tensor, noise: list[torch.Tensor]) -> torch.Tensor:
        x = self.const[None].expand(ws.shape[0], -1, -1, -1).to(ws.dtype)
        rgb, i = None, 0
        for r, to_rgb in enumerate(self.rgbs):
            if r > 0:
                x = _up(x)
            for _ in range(1 if r == 0 else 2):
                x = self.convs[i](x, ws[:, i], noise[i])
                i += 1
            y = to_rgb(x, ws[:, i])
            rgb = y if rgb is None else _up(rgb) + y
        return rgb * 0.5 + 0.5  # the [-1, 1] output of the paper, moved to genlab's [0, 1]


class Generator(nn.Module):
    """z -> images: the mapping network and the synthesis network."""

    def __init__(self, config: StyleGANConfig):
        super().__init__()
        self.mapping = MappingNetwork(
            config.latent_dim, config.mapping_layers, config.mapping_lr_mul
        )
        self.synthesis = Synthesis(config)

    def forward(self, z: torch.Tensor, noise: list[torch.Tensor]) -> torch.Tensor:
        w = self.mapping(z)
        return self.synthesis(w[:, None].expand(-1, self.synthesis.num_ws, -1), noise)


class DBlock(nn.Module):
    """Residual D block: (conv3x3, lrelu, 2x avg-pool, conv3x3, lrelu) + 1x1 skip of the
    pooled input, summed and scaled by 1 / sqrt 2."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv0 = EqualConv2d(c_in, c_in, 3)
        self.conv1 = EqualConv2d(c_in, c_out, 3)
        self.skip = EqualConv2d(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.skip(F.avg_pool2d(x, 2))
        x = lrelu(self.conv1(F.avg_pool2d(lrelu(self.conv0(x)), 2)))
        return (x + y) / SQRT2


class Discriminator(nn.Module):
    """images (B, C, S, S) in [0, 1] -> logits (B,)."""

    def __init__(self, config: StyleGANConfig):
        super().__init__()
        levels, side = conv_levels(config.image_size)
        chans = level_widths(config.d_widths, levels + 1)  # full resolution -> bottom
        self.from_rgb = EqualConv2d(config.channels, chans[0], 1)
        self.blocks = nn.Sequential(
            *(DBlock(a, b) for a, b in zip(chans[:-1], chans[1:], strict=True))
        )
        c = chans[-1]
        self.conv = EqualConv2d(c + 1, c, 3)
        self.fc = EqualLinear(c * side * side, c)
        self.out = EqualLinear(c, 1)
        self.group = config.mbstd_group

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.blocks(lrelu(self.from_rgb(2 * x - 1)))
        h = lrelu(self.conv(minibatch_std(h, self.group)))
        return self.out(lrelu(self.fc(h.flatten(1)))).squeeze(1)


class StyleGAN(nn.Module):
    """The generator and discriminator with the training objectives of StyleGAN2.

    The GAN loop (`genlab.training.gan`) calls `d_loss`, `g_loss` and, every r1_every steps,
    `r1_loss`; the pictures use `mapping`, `styles`, `synthesize` and `sample`.
    """

    def __init__(self, config: StyleGANConfig):
        super().__init__()
        if config.loss != "ns":
            raise GenlabError(f"stylegan trains with the non-saturating loss, got {config.loss!r}")
        if config.num_classes:
            raise GenlabError("stylegan is unconditional: use cgan for a conditional GAN")
        if config.latent_dim < 1 or config.mapping_layers < 1 or config.r1_every < 1:
            raise GenlabError("latent_dim, mapping_layers and r1_every must be >= 1")
        self.policy = tuple(p.strip() for p in config.diffaug.split(",") if p.strip())
        unknown = [p for p in self.policy if p not in AUGMENTATIONS]
        if unknown:
            raise GenlabError(
                f"unknown augmentation {unknown[0]!r}; known: {', '.join(AUGMENTATIONS)}"
            )
        self.config = config
        self.generator = Generator(config)
        self.discriminator = Discriminator(config)

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    @property
    def num_ws(self) -> int:
        return self.generator.synthesis.num_ws

    @property
    def w_avg(self) -> torch.Tensor:
        return self.generator.mapping.w_avg

    def _device(self) -> torch.device:
        return self.generator.synthesis.const.device

    def mapping(self, z: torch.Tensor, psi: float = 1.0) -> torch.Tensor:
        """w = f(z), truncated towards w_avg by psi: (B, w_dim) on the model's device (z is
        moved there)."""
        return truncate(self.generator.mapping(z.to(self._device())), self.w_avg, psi)

    def noise(self, n: int, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """Per-layer noise maps (n, 1, H, W) from `generator`; n = 1 gives maps that every
        image of a batch shares (they broadcast)."""
        g_device = generator.device if generator is not None else self._device()
        return [torch.randn((n, *s), generator=generator, device=g_device).to(self._device())
                for s in self.generator.synthesis.noise_shapes()]  # fmt: skip

    def synthesize(
        self, ws: torch.Tensor, noise: list[torch.Tensor] | None = None, clamp: bool = True
    ) -> torch.Tensor:
        """Images from styles ws (B, num_ws, w_dim) or one w (B, w_dim) for every layer, and
        noise maps (B or 1, 1, H, W) per layer (None: fresh ones per image)."""
        if ws.ndim == 2:
            ws = ws[:, None].expand(-1, self.num_ws, -1)
        noise = noise if noise is not None else self.noise(ws.shape[0])
        x = self.generator.synthesis(ws, noise)
        return x.clamp(0, 1) if clamp else x

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """G(z) with fresh noise: (B, C, H, W) in [0, 1]."""
        return self.synthesize(self.mapping(z))

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        y: torch.Tensor | None = None,
        psi: float = 1.0,
    ) -> torch.Tensor:
        """n images from z ~ N(0, I) and noise drawn with `generator`, truncated by psi.

        Returns:
            (n, C, H, W) in [0, 1].
        """
        g_device = generator.device if generator is not None else self._device()
        z = torch.randn(n, self.latent_dim, generator=generator, device=g_device)
        noise = self.noise(n, generator)
        return self.synthesize(self.mapping(z.to(self._device()), psi), noise)

    # -- training objectives -------------------------------------------------------------------

    def _fake(self, z: torch.Tensor, shard: Shard) -> tuple[torch.Tensor, torch.Tensor]:
        """G(z) for training with style mixing and fresh noise; also w (B, w_dim)."""
        b, dev, n = z.shape[0], z.device, self.num_ws
        w = self.generator.mapping(z)
        w2 = self.generator.mapping(shard.randn(tuple(z.shape), device=dev).to(z.dtype))
        mix = shard.rand((b,), device=dev) < self.config.style_mixing
        cutoff = torch.where(mix, shard.randint(1, n, (b,), device=dev), n)
        ws = mix_styles(w, w2[:, None].expand(-1, n, -1), cutoff)
        noise = [shard.randn((b, *s), device=dev) for s in self.generator.synthesis.noise_shapes()]
        return self.generator.synthesis(ws, noise), w

    def _d(self, x: torch.Tensor, shard: Shard) -> torch.Tensor:
        return self.discriminator(diff_augment(x, self.policy, shard) if self.policy else x)

    def d_loss(
        self, x_real: torch.Tensor, y: torch.Tensor | None, z: torch.Tensor, shard: Shard = Shard()
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """D's non-saturating loss on a real batch and G(z) (detached): loss_d, d_real, d_fake."""
        with torch.no_grad():
            x_fake, _ = self._fake(z, shard)
        real_logits, fake_logits = self._d(x_real, shard), self._d(x_fake, shard)
        loss = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
        return loss, {
            "d_real": torch.sigmoid(real_logits.detach()).mean(),
            "d_fake": torch.sigmoid(fake_logits.detach()).mean(),
            "loss_d": loss.detach(),
        }

    def r1_loss(self, x_real: torch.Tensor, shard: Shard = Shard()) -> torch.Tensor:
        """R1 (gamma / 2 E||grad D||^2) on the real batch, the gradient taken with respect to
        the image centred to [-1, 1] as in the paper."""
        x = x_real.detach()
        centred = (2 * x.to(torch.promote_types(x.dtype, torch.float32)) - 1).requires_grad_(True)
        return r1_penalty(centred, self._d((centred + 1) / 2, shard), self.config.r1_gamma)

    def g_loss(
        self, z: torch.Tensor, y: torch.Tensor | None = None, shard: Shard = Shard()
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """G's non-saturating loss -E log D(G(z)); updates the tracked mean w on the way."""
        x_fake, w = self._fake(z, shard)
        fake_logits = self._d(x_fake, shard)
        loss = F.softplus(-fake_logits).mean()
        with torch.no_grad():
            mean, _ = shard.mean_std(w.to(self.w_avg.dtype))
            self.w_avg.lerp_(mean, 1.0 - self.config.w_avg_beta)
        return loss, {
            "loss_g": loss.detach(),
            "d_fake_g": torch.sigmoid(fake_logits.detach()).mean(),
        }


# ------------------------------------------------------------------------------ the family record


def configure(options: dict, data) -> Configured:
    """A StyleGAN for the training images' shape."""
    return Configured(image_config(StyleGANConfig, options, data))


OPTIONS = image_options(
    StyleGANConfig,
    "loss",
    latent_dim={"min": 1, "max": 4096},
    mapping_layers={"min": 1, "max": 16},
    mapping_lr_mul={"min_open": True, "max": 1.0},
    g_widths={"min": 1, "max": 1024},
    d_widths={"min": 1, "max": 1024},
    r1_gamma={"max": 1e4},
    r1_every={"min": 1, "max": 10_000},
    style_mixing={"max": 1.0},
    w_avg_beta={"max": 1.0},
    mbstd_group={"min": 1, "max": 1024},
    n_critic={"min": 1, "max": 100},
    lr_g={"min_open": True, "max": 1.0},
    lr_d={"min_open": True, "max": 1.0},
    betas={"length": 2, "max": 0.9999},
)

FAMILY = Family(
    name="stylegan",
    summary="StyleGAN2: mapping network, modulated convs, noise, R1, style mixing, truncation.",
    config=StyleGANConfig,
    model=StyleGAN,
    configure=configure,
    options=OPTIONS,
    train_defaults={
        "lr_schedule": "constant",
        "warmup_steps": 0,
        "grad_clip": None,
        "ema_decay": 0.998,
        "batch_size": 32,
    },
    train_ignores=("lr", "betas"),
)
