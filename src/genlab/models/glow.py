"""Glow (Kingma & Dhariwal 2018, "Glow: Generative Flow with Invertible 1x1 Convolutions"), the
multi-scale normalizing flow of RealNVP (Dinh et al. 2017, "Density estimation using Real NVP"),
with uniform or variational dequantization (Ho et al. 2019, "Flow++").

A flow is an invertible map y = h_0 -> h_1 -> ... -> h_n = eps with a tractable Jacobian, and
the change of variables gives the exact density

    log p(y) = log N(eps; 0, I) + sum_i log |det(dh_i / dh_{i-1})|.

One flow step is three layers on a (B, c, h, w) map, each with its log-determinant:

- ActNorm: y = (x + b) * exp(log_s) per channel, log|det| = h w sum(log_s); b and log_s are
  set from the first training batch so that y has zero mean and unit variance per channel
  (data-dependent init, remembered by the `actnorm_ready` buffer, saved with the weights).
- Invertible 1x1 convolution: y = W x at every position, W = P L (U + diag(sign_s exp(log_s)))
  (LU form: P a fixed permutation, L unit lower-, U strictly upper-triangular),
  log|det| = h w sum(log_s).
- Affine coupling: x_a, x_b = split(x); (t, r) = NN(x_a); s = sigmoid(r + 2);
  y = (x_a, (x_b + t) * s), log|det| = sum(log s). NN's last layer starts at zero, so every
  step starts close to the identity (Glow's code; the sigmoid keeps s in (0, 1)).

Multi-scale: each of the L `levels` squeezes 2x2 pixels into channels (c, h, w) ->
(4c, h/2, w/2), runs K (`depth`) steps, and, but for the last level, factors half of the
channels out: h, z = split(h), with z | h ~ N(mu(h), diag(sigma(h)^2)) (a zero-initialised conv
of h), written as the affine flow eps = (z - mu) / sigma with log|det| = -sum(log sigma). The
last level's h is eps itself, with a standard normal prior. The latent of `encode`/`decode` is
every level's eps, flat: (B, C H W), distributed N(0, I) under the model; `sample` decodes
T eps, T the temperature (Glow's reduced-temperature sampling).

Data: x holds levels v in {0, ..., 255} (as v / 255). Dequantization adds u in [0, 1)^D, and the
flow models w = (v + u) / 256 in [0, 1), mapped to y = logit(a + (1 - 2a) w) ("logit",
RealNVP's, a = `logit_alpha`) or to y = w - 0.5 ("center", Glow's), the map's log-determinant
(including -D log 256) counted. With q(u | v) the dequantization distribution,

    log P(v) >= E_q[log p(v + u) - log q(u | v)]   (Jensen; Ho et al. 2019, eq. 4),

with q uniform (log q = 0: "uniform", Theis et al. 2016) or a conditional flow (u = sigmoid of
a Gaussian with mean and scale from v, then affine couplings conditioned on features of v:
"variational", Flow++). `log_prob` computes one draw of the bracket: the flow's density of
v + u is exact, the discrete likelihood log P(v) is bounded. Bits per dimension:
-(bracket) / (D ln 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from genlab.data import Batch, Shard
from genlab.errors import GenlabError
from genlab.family import Configured, Family, image_config, image_options

DEQUANTIZATIONS = ("uniform", "variational")
PREPROCESSING = ("center", "logit")
LOG_2PI = math.log(2 * math.pi)
LOG_256 = math.log(256)
LN2 = math.log(2)


def squeeze(x: torch.Tensor) -> torch.Tensor:
    """Space to depth: (B, c, h, w) -> (B, 4c, h/2, w/2), each 2x2 block of pixels in channels."""
    B, c, h, w = x.shape
    x = x.reshape(B, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
    return x.reshape(B, 4 * c, h // 2, w // 2)


def unsqueeze(x: torch.Tensor) -> torch.Tensor:
    """The inverse of `squeeze`: (B, 4c, h, w) -> (B, c, 2h, 2w)."""
    B, c4, h, w = x.shape
    x = x.reshape(B, c4 // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
    return x.reshape(B, c4 // 4, 2 * h, 2 * w)


def standard_normal_log_prob(eps: torch.Tensor) -> torch.Tensor:
    """log N(eps; 0, I) per example: (B, ...) -> (B,)."""
    return -0.5 * (LOG_2PI + eps.square()).flatten(1).sum(1)


def zero_conv(c_in: int, c_out: int, kernel: int = 3) -> nn.Conv2d:
    """A conv whose weights and bias start at zero (the last layer of Glow's networks)."""
    conv = nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


def _exact(x: torch.Tensor) -> torch.Tensor:
    """x in at least float32: the density's terms never run in bf16."""
    return x if x.dtype == torch.float64 else x.float()


def _no_autocast(x: torch.Tensor):
    """A context with autocast off on x's device (the flow's linear maps stay in float32)."""
    return torch.autocast(device_type=x.device.type, enabled=False)


def _expand(logdet: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A scalar log-determinant as one per example (B,)."""
    return logdet.expand(x.shape[0])


# ------------------------------------------------------------------------------ the layers


class ActNorm(nn.Module):
    """y = (x + b) * exp(log_s) per channel; log|det| = h w sum(log_s)."""

    def __init__(self, channels: int):
        super().__init__()
        self.b = nn.Parameter(torch.zeros(channels))
        self.log_s = nn.Parameter(torch.zeros(channels))

    @torch.no_grad()
    def initialize(self, x: torch.Tensor, shard: Shard = Shard()) -> None:
        """Data-dependent init: b = -mean, exp(log_s) = 1 / std per channel of x (B, c, h, w),
        over the global batch (`shard`), so that y starts with zero mean and unit variance."""
        rows = x.detach().movedim(1, -1).reshape(-1, x.shape[1]).to(self.b.dtype)  # (B h w, c)
        mean, std = shard.mean_std(rows)
        self.b.copy_(-mean)
        self.log_s.copy_(-torch.log(std + 1e-6))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, c, h, w) -> (y, log|det| (B,))."""
        y = (x + self.b.view(1, -1, 1, 1)) * torch.exp(self.log_s).view(1, -1, 1, 1)
        return y, _expand(x.shape[2] * x.shape[3] * self.log_s.sum(), x)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y * torch.exp(-self.log_s).view(1, -1, 1, 1) - self.b.view(1, -1, 1, 1)


class InvConv1x1(nn.Module):
    """y = W x at every position, W = P L (U + diag(sign_s exp(log_s))); log|det| = h w
    sum(log_s). W starts as a random rotation (Glow's init)."""

    def __init__(self, channels: int):
        super().__init__()
        w = torch.linalg.qr(torch.randn(channels, channels, dtype=torch.float64))[0]
        P, L, U = torch.linalg.lu(w)
        s = U.diagonal()
        dtype = torch.get_default_dtype()
        self.register_buffer("P", P.to(dtype))
        self.register_buffer("sign_s", s.sign().to(dtype))
        self.L = nn.Parameter(L.tril(-1).to(dtype))  # its strict lower triangle is used
        self.U = nn.Parameter(U.triu(1).to(dtype))  # its strict upper triangle is used
        self.log_s = nn.Parameter(s.abs().log().to(dtype))

    def weight(self) -> torch.Tensor:
        """W (c, c)."""
        eye = torch.eye(self.L.shape[0], dtype=self.L.dtype, device=self.L.device)
        L = self.L.tril(-1) + eye
        U = self.U.triu(1) + torch.diag(self.sign_s * torch.exp(self.log_s))
        return self.P @ L @ U

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with _no_autocast(x):
            y = F.conv2d(x, self.weight()[:, :, None, None])
        return y, _expand(x.shape[2] * x.shape[3] * self.log_s.sum(), x)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        with _no_autocast(y):
            w_inv = torch.linalg.inv(self.weight())
            return F.conv2d(y, w_inv[:, :, None, None])


class AffineCoupling(nn.Module):
    """x_a, x_b = split(x); (t, r) = NN(x_a [, cond]); y_b = (x_b + t) * sigmoid(r + 2);
    log|det| = sum(log sigmoid(r + 2)). `cond` (B, cond_channels, h, w): features the network
    also reads (the variational dequantizer's image)."""

    def __init__(self, channels: int, width: int, cond_channels: int = 0):
        super().__init__()
        self.c_a = channels // 2
        c_b = channels - self.c_a
        self.net = nn.Sequential(
            nn.Conv2d(self.c_a + cond_channels, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 1), nn.ReLU(),
            zero_conv(width, 2 * c_b),
        )  # fmt: skip

    def _shift_logit(self, x_a: torch.Tensor, cond: torch.Tensor | None):
        """(t, r + 2), each (B, c_b, h, w), in x_a's precision (the network may run in bf16)."""
        h = self.net(x_a if cond is None else torch.cat([x_a, cond.to(x_a.dtype)], 1))
        t, r = h.to(x_a.dtype).chunk(2, 1)
        return t, r + 2.0

    def forward(
        self, x: torch.Tensor, cond: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x_a, x_b = x[:, : self.c_a], x[:, self.c_a :]
        t, logit_s = self._shift_logit(x_a, cond)
        y_b = (x_b + t) * torch.sigmoid(logit_s)
        return torch.cat([x_a, y_b], 1), F.logsigmoid(logit_s).flatten(1).sum(1)

    def inverse(self, y: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        y_a, y_b = y[:, : self.c_a], y[:, self.c_a :]
        t, logit_s = self._shift_logit(y_a, cond)
        return torch.cat([y_a, y_b / torch.sigmoid(logit_s) - t], 1)


class FlowStep(nn.Module):
    """ActNorm, then the invertible 1x1 convolution, then the affine coupling."""

    def __init__(self, channels: int, width: int):
        super().__init__()
        self.actnorm = ActNorm(channels)
        self.invconv = InvConv1x1(channels)
        self.coupling = AffineCoupling(channels, width)

    def forward(
        self, x: torch.Tensor, init: Shard | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x -> (y, log|det| (B,)); `init`: initialise ActNorm on x first (over this shard)."""
        if init is not None:
            self.actnorm.initialize(x, init)
        x, ld_actnorm = self.actnorm(x)
        x, ld_invconv = self.invconv(x)
        x, ld_coupling = self.coupling(x)
        return x, ld_actnorm + ld_invconv + ld_coupling

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return self.actnorm.inverse(self.invconv.inverse(self.coupling.inverse(y)))


class SplitPrior(nn.Module):
    """z | h ~ N(mu(h), diag(sigma(h)^2)) as the flow eps = (z - mu) / sigma given h;
    log|det| = -sum(log sigma). The conv starts at zero: a standard normal."""

    def __init__(self, channels: int):
        super().__init__()
        self.net = zero_conv(channels, 2 * channels)

    def _mu_log_sigma(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, log_sigma = self.net(h).to(h.dtype).chunk(2, 1)
        return mu, log_sigma

    def forward(self, h: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, log_sigma = self._mu_log_sigma(h)
        return (z - mu) * torch.exp(-log_sigma), -log_sigma.flatten(1).sum(1)

    def inverse(self, h: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        mu, log_sigma = self._mu_log_sigma(h)
        return mu + torch.exp(log_sigma) * eps


class Level(nn.Module):
    """K flow steps on a squeezed map of `channels`, and the prior of the half factored out
    after them (None on the last level)."""

    def __init__(self, channels: int, depth: int, width: int, last: bool):
        super().__init__()
        self.steps = nn.ModuleList(FlowStep(channels, width) for _ in range(depth))
        self.prior = None if last else SplitPrior(channels // 2)


class Dequantizer(nn.Module):
    """q(u | v) of variational dequantization (Flow++): on the squeezed grid, e ~ N(0, I),
    g = mu(v) + exp(log_sigma(v)) e, `depth` affine couplings of g conditioned on features of
    v (the channels reversed after each), u = sigmoid(g); log q(u | v) is log N(e) minus every
    map's log|det|."""

    def __init__(self, channels: int, width: int, depth: int):
        super().__init__()
        c = 4 * channels
        self.features = nn.Sequential(
            nn.Conv2d(c, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
        )  # fmt: skip
        self.base = zero_conv(width, 2 * c)
        self.couplings = nn.ModuleList(
            AffineCoupling(c, width, cond_channels=width) for _ in range(depth)
        )

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, C, H, W): the image as network input; e (B, C, H, W) ~ N(0, I) ->
        (u in (0, 1) (B, C, H, W), log q(u | v) (B,))."""
        f = self.features(squeeze(x))
        mu, log_sigma = self.base(f).to(e.dtype).chunk(2, 1)
        e = squeeze(e)
        g = mu + torch.exp(log_sigma) * e
        log_q = standard_normal_log_prob(e) - log_sigma.flatten(1).sum(1)
        for coupling in self.couplings:
            g, logdet = coupling(g, f)
            g, log_q = g.flip(1), log_q - logdet
        log_q = log_q - (F.logsigmoid(g) + F.logsigmoid(-g)).flatten(1).sum(1)  # d sigmoid
        return unsqueeze(torch.sigmoid(g)), log_q


# ------------------------------------------------------------------------------ the model


@dataclass(frozen=True)
class GlowConfig:
    """Attributes:
    channels: image channels (1 grayscale, 3 RGB).
    image_size: image side in pixels; divisible by 2^levels.
    levels: L, the scales: each squeezes 2x2 pixels into channels (28 -> 14 -> 7 for 2).
    depth: K, flow steps (actnorm, 1x1 convolution, coupling) per level.
    width: channels of the coupling networks' hidden layers.
    dequantization: "uniform" (u ~ U[0, 1)) or "variational" (q(u | x) a conditional flow,
        Flow++): the variational bound is tighter and costs a second, smaller network.
    dequant_depth: affine couplings of the variational dequantizer.
    dequant_width: channels of the variational dequantizer's networks.
    preprocess: the map of w = (v + u) / 256 to the flow's space: "logit"
        (logit(a + (1 - 2a) w), RealNVP) or "center" (w - 0.5, Glow); its log-determinant is in
        the likelihood. The logit learns faster on Fashion-MNIST (about 3.9 against 5.5
        bits/dim after 200 steps): it widens the bins near 0, where half the pixels are.
    logit_alpha: a of the logit pre-processing, in (0, 0.5): 0.05 (RealNVP's CIFAR-10 value)
        learns slower here (4.8 bits/dim after 200 steps), 1e-5 no faster than 1e-3.
    temperature: the default scale T of the latent at sampling, z = T eps (Glow: 0.7).
    """

    channels: int = 1
    image_size: int = 28
    levels: int = 2
    depth: int = 8
    width: int = 64
    dequantization: str = "uniform"
    dequant_depth: int = 2
    dequant_width: int = 32
    preprocess: str = "logit"
    logit_alpha: float = 1e-3
    temperature: float = 0.7


def check_size(image_size: int, levels: int) -> None:
    """A one-line error unless `levels` squeezes of a side `image_size` image are possible."""
    if levels < 1 or image_size % 2**levels:
        most = (image_size & -image_size).bit_length() - 1  # the times 2 divides image_size
        fits = f"use --levels 1 to {most}, or" if most else "use"
        raise GenlabError(
            f"--levels {levels} does not fit a {image_size}x{image_size} image: {fits} an "
            f"image side divisible by 2^levels"
        )


class Terms(NamedTuple):
    """Per-image terms in nats, each (B,): log_px = log_pz + logdet - log_q, one draw of the
    lower bound on log P(x); logdet counts the flow and the pre-processing."""

    log_px: torch.Tensor
    log_pz: torch.Tensor
    logdet: torch.Tensor
    log_q: torch.Tensor


class NLL(NamedTuple):
    """One row of `genlab nll`: what it is, -log p per image (B,) in nats, and whether it is
    the exact NLL of the discrete images (False: an upper bound)."""

    what: str
    nats: torch.Tensor
    exact: bool


class Glow(nn.Module):
    """Multi-scale Glow on dequantized images: `loss` in bits/dim, `log_prob`, `sample`, and
    the invertible `encode`/`decode` between images and the N(0, I) latent."""

    def __init__(self, config: GlowConfig):
        super().__init__()
        check_size(config.image_size, config.levels)
        if min(config.depth, config.width, config.dequant_depth, config.dequant_width) < 1:
            raise GenlabError("depth, width, dequant_depth and dequant_width must be >= 1")
        if config.dequantization not in DEQUANTIZATIONS:
            raise GenlabError(f"dequantization must be one of {', '.join(DEQUANTIZATIONS)}")
        if config.preprocess not in PREPROCESSING:
            raise GenlabError(f"preprocess must be one of {', '.join(PREPROCESSING)}")
        if not 0 < config.logit_alpha < 0.5:
            raise GenlabError(f"--logit-alpha {config.logit_alpha}: use a value in (0, 0.5)")
        if not config.temperature > 0:
            raise GenlabError(f"--temperature {config.temperature}: use a value > 0")
        self.config = config
        c, side = config.channels, config.image_size
        self.levels = nn.ModuleList()
        self.latent_shapes: list[tuple[int, int, int]] = []  # each level's eps, in order
        for i in range(config.levels):
            c, side, last = 4 * c, side // 2, i == config.levels - 1
            self.levels.append(Level(c, config.depth, config.width, last))
            c = c if last else c // 2
            self.latent_shapes.append((c, side, side))
        self.dequantizer = (
            Dequantizer(config.channels, config.dequant_width, config.dequant_depth)
            if config.dequantization == "variational"
            else None
        )
        self.register_buffer("actnorm_ready", torch.tensor(False))
        self._ready = False  # actnorm_ready seen True (so that training never reads it again)
        self.register_load_state_dict_post_hook(_forget_ready)

    @property
    def dims(self) -> int:
        """D, the dimensions of an image (C H W)."""
        return self.config.channels * self.config.image_size**2

    # -- the flow ----------------------------------------------------------------------------

    def flow(
        self, y: torch.Tensor, init: Shard | None = None
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """y (B, C, H, W) in the flow's space -> (every level's eps, log|det| (B,)); `init`
        initialises every ActNorm on this batch (over the shard) on the way."""
        h, logdet, eps = y, y.new_zeros(y.shape[0]), []
        for level in self.levels:
            h = squeeze(h)
            for step in level.steps:
                h, ld = step(h, init)
                logdet = logdet + ld
            if level.prior is not None:
                h, z = h.chunk(2, 1)
                e, ld = level.prior(h, z)
                eps, logdet = [*eps, e], logdet + ld
        return [*eps, h], logdet

    def reverse(self, eps: list[torch.Tensor]) -> torch.Tensor:
        """The inverse of `flow`: every level's eps -> y (B, C, H, W)."""
        h = eps[-1]
        for i in reversed(range(len(self.levels))):
            level = self.levels[i]
            if level.prior is not None:
                h = torch.cat([h, level.prior.inverse(h, eps[i])], 1)
            for step in reversed(level.steps):
                h = step.inverse(h)
            h = unsqueeze(h)
        return h

    # -- data <-> the flow's space -------------------------------------------------------------

    def levels_of(self, x: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] -> their levels v in {0, ..., 255}, as floats of x's precision."""
        return (_exact(x) * 255).round().clamp(0, 255)

    def to_flow(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """w = (v + u) / 256 in [0, 1) -> (y, log|dy / d(v + u)| (B,))."""
        per_image = w.new_full((w.shape[0],), -self.dims * LOG_256)
        if self.config.preprocess == "center":
            return w - 0.5, per_image
        a = self.config.logit_alpha
        s = a + (1 - 2 * a) * w
        logdet = (math.log(1 - 2 * a) - torch.log(s) - torch.log1p(-s)).flatten(1).sum(1)
        return torch.log(s) - torch.log1p(-s), per_image + logdet

    def from_flow(self, y: torch.Tensor) -> torch.Tensor:
        """The inverse of `to_flow`, then the level w falls in: images (B, C, H, W) in [0, 1]."""
        if self.config.preprocess == "center":
            w = y + 0.5
        else:
            a = self.config.logit_alpha
            w = (torch.sigmoid(y) - a) / (1 - 2 * a)
        v = torch.floor(256 * w.nan_to_num(0.5)).clamp(0, 255)
        return (v / 255).float()

    def dequantize(self, v: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Levels v and noise (u ~ U[0, 1) for "uniform", e ~ N(0, I) for "variational") ->
        (u, log q(u | v) (B,))."""
        if self.dequantizer is None:
            return noise, v.new_zeros(v.shape[0])
        return self.dequantizer(v / 255 - 0.5, noise)

    def terms(self, x: torch.Tensor, noise: torch.Tensor, init: Shard | None = None) -> Terms:
        """The bound's terms for images x (B, C, H, W) in [0, 1] and one draw of noise."""
        v = self.levels_of(x)
        u, log_q = self.dequantize(v, _exact(noise).to(v.dtype))
        y, ld_pre = self.to_flow((v + u) / 256)
        eps, ld_flow = self.flow(y, init)
        log_pz = sum(standard_normal_log_prob(e) for e in eps)
        logdet = ld_pre + ld_flow
        return Terms(log_pz + logdet - log_q, log_pz, logdet, log_q)

    # -- training and likelihood ----------------------------------------------------------------

    def noise(self, shape, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
        """Dequantization noise of `shape` from `generator` (drawn on its device, then moved)."""
        device = generator.device if generator is not None else like.device
        draw = torch.rand if self.dequantizer is None else torch.randn
        return draw(shape, generator=generator, device=device).to(like.device, like.dtype)

    def loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """-log P(x) in bits/dim (one draw of the bound, mean over the batch); the first batch
        initialises ActNorm. Logs bpd and the log-determinant (flow and pre-processing) in
        bits/dim, and log q for variational dequantization."""
        x, shard = batch.x, batch.shard
        if self.dequantizer is None:
            noise = shard.rand(x.shape, device=x.device)
        else:
            noise = shard.randn(x.shape, device=x.device, dtype=x.dtype)
        init = None if self.ready() else shard
        t = self.terms(x, noise, init)
        if init is not None:
            self.actnorm_ready.fill_(True)
            self._ready = True
        bits = self.dims * LN2
        loss = -t.log_px.mean() / bits
        logs = {"bpd": loss.detach(), "logdet": t.logdet.mean().detach() / bits}
        if self.dequantizer is not None:
            logs["log_q"] = t.log_q.mean().detach() / bits
        return loss, logs

    def ready(self) -> bool:
        """Whether ActNorm has been initialised (from the buffer once, then remembered)."""
        self._ready = self._ready or bool(self.actnorm_ready)
        return self._ready

    @torch.no_grad()
    def log_prob(
        self, x: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """One draw of log p(v + u) - log q(u | v) in nats per image (B,), x (B, C, H, W) in
        [0, 1]. The flow's density of the dequantized image v + u is exact; as a likelihood of
        the discrete image it is a lower bound in expectation (uniform u: Jensen; variational:
        the Flow++ bound, tighter)."""
        return self.terms(x, self.noise(x.shape, generator, x)).log_px

    def likelihoods(
        self,
        x: torch.Tensor,
        y: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> list[NLL]:
        """The rows of `genlab nll` for images x (B, C, H, W): -log_prob, an upper bound on the
        discrete NLL. `y` is ignored (the model is unconditional)."""
        what = {
            "uniform": "-log p(x + u), uniform dequantization",
            "variational": "-(log p(x + u) - log q(u|x)), variational dequantization",
        }[self.config.dequantization]
        return [NLL(what, -self.log_prob(x, generator=generator), False)]

    # -- latent and sampling ---------------------------------------------------------------------

    @torch.no_grad()
    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Images (B, C, H, W) in [0, 1] -> eps (B, C H W), every level's latent, flat; u at the
        centre of each level's bin (deterministic). `y` is ignored."""
        v = self.levels_of(x)
        eps, _ = self.flow(self.to_flow((v + 0.5) / 256)[0])
        return torch.cat([e.flatten(1) for e in eps], 1)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """eps (B, C H W) -> images (B, C, H, W) in [0, 1]; decode(encode(x)) = x. `y` is
        ignored."""
        param = next(self.parameters())
        z = z.to(param.device, _exact(param).dtype)
        shapes = self.latent_shapes
        parts = z.split([math.prod(s) for s in shapes], 1)
        eps = [e.reshape(-1, *s) for e, s in zip(parts, shapes, strict=True)]
        return self.from_flow(self.reverse(eps))

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        y: torch.Tensor | None = None,
        temperature: float | None = None,
    ) -> torch.Tensor:
        """n images decoded from z = T eps, eps ~ N(0, I), T the temperature (the config's,
        0.7 by default: Glow's reduced-temperature sampling trades diversity for fidelity).

        Returns:
            (n, C, H, W) in [0, 1]. `y` is ignored (the model is unconditional).
        """
        T = self.config.temperature if temperature is None else temperature
        if not T > 0:
            raise GenlabError(f"--temperature {T}: use a value > 0")
        param = next(self.parameters())
        device = generator.device if generator is not None else param.device
        eps = torch.randn(n, self.dims, generator=generator, device=device)
        return self.decode(T * eps.to(param.device))


def _forget_ready(module: Glow, _keys) -> None:
    """After load_state_dict, read actnorm_ready again (the loaded state may differ)."""
    module._ready = False


# ------------------------------------------------------------------------------ the family record


def configure(options: dict, data) -> Configured:
    """A Glow for the training images' shape (a one-line error if they cannot be squeezed)."""
    config = image_config(GlowConfig, options, data)
    check_size(config.image_size, config.levels)
    return Configured(config)


FAMILY = Family(
    name="glow",
    summary="Glow: a multi-scale normalizing flow, exact density (bits/dim), invertible latent.",
    config=GlowConfig,
    model=Glow,
    configure=configure,
    train_defaults={"batch_size": 64},
    options=image_options(
        GlowConfig,
        levels={"min": 1, "max": 8},
        depth={"min": 1, "max": 256},
        width={"min": 1, "max": 1024},
        dequantization={"choices": DEQUANTIZATIONS},
        dequant_depth={"min": 1, "max": 64},
        dequant_width={"min": 1, "max": 1024},
        preprocess={"choices": PREPROCESSING},
        logit_alpha={"min": 0.0, "min_open": True, "max": 0.49},
        temperature={"min": 0.0, "min_open": True, "max": 10.0},
    ),
)
