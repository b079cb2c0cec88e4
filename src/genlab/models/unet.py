"""Noise-prediction U-Net eps_theta(x_t, t, cond) for diffusion (Ho et al. 2020, "Denoising
Diffusion Probabilistic Models"; layout after Ronneberger et al. 2015 and Nichol & Dhariwal
2021, "Improved Denoising Diffusion Probabilistic Models").

Residual blocks (GroupNorm, SiLU, conv) receive the timestep embedding as a per-channel
scale-shift; multi-head self-attention runs at the configured levels; optional cross-attention
to a context sequence (B, L, context_dim) prepares text conditioning; a learned class embedding
with one extra null id (= num_classes) supports classifier-free guidance (Ho & Salimans 2022).
The output conv is zero-initialised, so the initial prediction is exactly 0.

Odd sizes: downsampling is a 3x3 stride-2 conv with padding 1 (7 -> 4), and upsampling is
nearest-neighbour to the exact size of the matching skip tensor, then a conv; so any image size
works (28 -> 14 -> 7 -> 14 -> 28). The process (noise schedule, sampling) is `genlab.diffusion`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genlab.errors import GenlabError


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding (Vaswani et al. 2017, sec. 3.5): t (B,) -> (B, dim), [cos | sin].

    emb[:, i] = cos(t * w_i), emb[:, half + i] = sin(t * w_i), w_i = max_period^(-i / half).
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    args = t.to(freqs.dtype)[:, None] * freqs[None]  # (B, half), in the default float dtype
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


def drop_labels(
    y: torch.Tensor,
    p: float,
    null_id: int,
    generator: torch.Generator | None = None,
    uniform: torch.Tensor | None = None,
) -> torch.Tensor:
    """Replace each label by `null_id` with probability p (label dropout for CFG training).

    Args:
        y: (B,) long class ids.
        p: drop probability in [0, 1].
        null_id: the "no class" id, `UNetConfig.num_classes`.
        generator: seeds the drops.
        uniform: (B,) U(0, 1) draws to use instead (a label is dropped where uniform < p).

    Returns:
        (B,) long, a new tensor.
    """
    if not 0.0 <= p <= 1.0:
        raise GenlabError(f"label drop probability must be in [0, 1], got {p}")
    if uniform is None:
        uniform = torch.rand(y.shape, generator=generator, device=y.device)
    drop = uniform < p
    return torch.where(drop, torch.full_like(y, null_id), y)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv, time scale-shift, GroupNorm-SiLU-dropout-conv, plus a skip."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * c_out)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, c_out, H, W)
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)  # (B, c_out, 1, 1)
        h = self.norm2(h) * (1 + scale) + shift  # adaptive GroupNorm (Nichol & Dhariwal 2021)
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    """Pre-norm multi-head attention of the pixels to themselves or to a context sequence."""

    def __init__(self, channels: int, heads: int, groups: int, context_dim: int = 0):
        super().__init__()
        if channels % heads:
            raise GenlabError(f"width {channels} is not divisible by {heads} attention heads")
        self.heads = heads
        self.norm = nn.GroupNorm(groups, channels)
        self.q = nn.Linear(channels, channels)
        self.kv = nn.Linear(context_dim or channels, 2 * channels)
        self.out = nn.Linear(channels, channels)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x (B, C, H, W); context (B, L, context_dim) or None (self-attention); mask (B, L) bool,
        True for the context tokens to attend to (padding is False)."""
        B, C, H, W = x.shape
        h = self.norm(x).flatten(2).transpose(1, 2)  # (B, HW, C)
        src = h if context is None else context  # (B, L, C or context_dim)
        k, v = self.kv(src).chunk(2, dim=-1)  # (B, L, C) each

        def split(z: torch.Tensor) -> torch.Tensor:
            return z.unflatten(-1, (self.heads, -1)).transpose(1, 2)  # (B, heads, L, C / heads)

        attn_mask = None if mask is None else mask[:, None, None, :]  # (B, 1, 1, L)
        a = F.scaled_dot_product_attention(split(self.q(h)), split(k), split(v), attn_mask)
        a = self.out(a.transpose(1, 2).flatten(2))  # (B, HW, C)
        return x + a.transpose(1, 2).reshape(B, C, H, W)


class Stage(nn.Module):
    """A residual block, then self-attention and cross-attention where configured."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, attn: bool, cfg: UNetConfig):
        super().__init__()
        self.res = ResBlock(c_in, c_out, emb_dim, cfg.groups, cfg.dropout)
        self.attn = Attention(c_out, cfg.heads, cfg.groups) if attn else None
        cross = attn and cfg.context_dim > 0
        self.cross = Attention(c_out, cfg.heads, cfg.groups, cfg.context_dim) if cross else None

    def forward(
        self,
        x: torch.Tensor,
        emb: torch.Tensor,
        context: torch.Tensor | None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x = self.res(x, emb)
        if self.attn is not None:
            x = self.attn(x)
        if self.cross is not None and context is not None:
            x = self.cross(x, context, mask)
        return x


@dataclass(frozen=True)
class UNetConfig:
    """Attributes:
    channels: image channels (1 grayscale, 3 RGB); input and output alike.
    image_size: image side in pixels; any size works (odd sides are padded by the strided conv
        and the upsampling matches the skip's size).
    width: channels at full resolution; level i has width * mults[i]. The defaults (16,
        (1, 2, 4): 0.72 M parameters) keep the full-resolution convolutions, whose backward
        pass dominates a CPU step, narrow: 2.4x the training throughput of width 32 with
        mults (1, 2, 2) (1.19 M) on one core.
    mults: width multipliers per level; len(mults) - 1 stride-2 downsamplings.
    blocks: residual blocks per level on the way down (the way up has blocks + 1).
    attention_levels: level indices (0 = full resolution) with self-attention (and
        cross-attention when context_dim > 0). Levels rather than pixel sizes so one config
        serves several image sizes: (2,) is 7x7 at 28x28 and 8x8 at 32x32.
    heads: attention heads; every attended width must divide by it.
    emb_dim: timestep (and class) embedding size; 4 * width as in Ho et al. when 0.
    dropout: dropout inside the residual blocks.
    num_classes: 0 = unconditional; > 0 adds a class embedding with num_classes + 1 ids, the
        last (id num_classes) the null class for classifier-free guidance.
    context_dim: 0 = none; > 0 adds cross-attention to a context (B, L, context_dim).
    groups: GroupNorm groups; every width must divide by it.
    """

    channels: int = 1
    image_size: int = 28
    width: int = 16
    mults: tuple[int, ...] = (1, 2, 4)
    blocks: int = 1
    attention_levels: tuple[int, ...] = (2,)
    heads: int = 4
    emb_dim: int = 0
    dropout: float = 0.0
    num_classes: int = 0
    context_dim: int = 0
    groups: int = 8

    @property
    def time_dim(self) -> int:
        return self.emb_dim or 4 * self.width


class UNet(nn.Module):
    """eps_theta(x_t, t, cond, context): (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        cfg = self.config = config
        widths = [cfg.width * m for m in cfg.mults]
        if any(w % cfg.groups for w in widths):
            raise GenlabError(f"every width {widths} must divide by groups={cfg.groups}")
        E = cfg.time_dim
        self.time_mlp = nn.Sequential(nn.Linear(cfg.width, E), nn.SiLU(), nn.Linear(E, E))
        self.class_emb = nn.Embedding(cfg.num_classes + 1, E) if cfg.num_classes > 0 else None
        self.stem = nn.Conv2d(cfg.channels, cfg.width, 3, padding=1)

        self.down = nn.ModuleList()  # per level: a ModuleList of Stages
        self.downsample = nn.ModuleList()
        skips, c = [cfg.width], cfg.width
        for i, w in enumerate(widths):
            attn = i in cfg.attention_levels
            stages = nn.ModuleList()
            for _ in range(cfg.blocks):
                stages.append(Stage(c, w, E, attn, cfg))
                c = w
                skips.append(c)
            self.down.append(stages)
            if i < len(widths) - 1:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                skips.append(c)

        self.mid = nn.ModuleList([Stage(c, c, E, True, cfg), Stage(c, c, E, False, cfg)])

        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i in reversed(range(len(widths))):
            attn = i in cfg.attention_levels
            stages = nn.ModuleList()
            for _ in range(cfg.blocks + 1):
                stages.append(Stage(c + skips.pop(), widths[i], E, attn, cfg))
                c = widths[i]
            self.up.append(stages)
            if i > 0:
                self.upsample.append(nn.Conv2d(c, c, 3, padding=1))
        assert not skips  # every skip is used once on the way up

        self.out_norm = nn.GroupNorm(cfg.groups, c)
        self.out = nn.Conv2d(c, cfg.channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)  # the initial prediction is exactly 0
        nn.init.zeros_(self.out.bias)

    def forward(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        cond: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict the noise.

        Args:
            x_t: (B, C, H, W) noisy images.
            t: (B,) timesteps, long or float.
            cond: (B,) long class ids in [0, num_classes]; num_classes (or None) = no class.
            context: (B, L, context_dim) for cross-attention, or None to skip it.
            context_mask: (B, L) bool, True for real tokens (padding False); None: all real.

        Returns:
            (B, C, H, W).
        """
        # sinusoids of size width, then an MLP to E = 4 * width, as in Ho et al. 2020
        emb = self.time_mlp(timestep_embedding(t, self.config.width))  # (B, E)
        if self.class_emb is not None:
            if cond is None:
                cond = torch.full_like(t, self.config.num_classes, dtype=torch.long)
            emb = emb + self.class_emb(cond)

        h = self.stem(x_t)  # (B, width, H, W)
        hs = [h]
        for i, stages in enumerate(self.down):
            for stage in stages:
                h = stage(h, emb, context, context_mask)
                hs.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)  # (B, c, ceil(H / 2), ceil(W / 2))
                hs.append(h)
        for stage in self.mid:
            h = stage(h, emb, context, context_mask)
        for i, stages in enumerate(self.up):
            for stage in stages:
                h = stage(torch.cat([h, hs.pop()], dim=1), emb, context, context_mask)
            if i < len(self.upsample):
                size = hs[-1].shape[-2:]  # the next skip's size: crops 8 -> 7 where 7 was padded
                h = self.upsample[i](F.interpolate(h, size=size, mode="nearest"))
        return self.out(F.silu(self.out_norm(h)))
