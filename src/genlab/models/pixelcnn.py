"""Gated PixelCNN (van den Oord et al. 2016, "Conditional Image Generation with PixelCNN
Decoders"): an autoregressive image model with an exact likelihood

    log p(x) = sum_i log p(x_i | x_<i),

the pixels x_i in raster order (rows top to bottom, each left to right). Two stacks of
convolutions keep the receptive field causal without the blind spot of the plain PixelCNN: the
vertical stack sees every row above (as wide as its kernels reach), the horizontal stack the
pixels to the left in the current row, and the vertical stack feeds the horizontal one. Each
layer is a gated activation tanh(W_f * v) . sigmoid(W_g * v) with, for a conditional model, a
class embedding added to both halves (the paper's eq. 4); the horizontal stack is residual and
every layer adds a skip connection to the output head.

Masks A and B (van den Oord et al. 2016, "Pixel Recurrent Neural Networks") are realised by
padding and cropping rather than by masking weights: the first layer ("mask A") sees only
pixels strictly before the current one, later layers ("mask B") also their own position,
whose features already exclude the current pixel.

Outputs, per pixel: a softmax over the `levels` intensities (256; 2 for binarized data), or the
discretized logistic mixture of PixelCNN++ (Salimans et al. 2017) with the bins at the two ends
open to -inf and +inf.

`pixels_per_step` = k > 1 emits k pixels at once, independently given all earlier blocks: the
image is cut into blocks (k/W rows when W divides k, else sqrt(k) x sqrt(k) squares, else 1 x k
strips), each block is one "pixel" of a smaller grid with k channels, and the same network runs
on that grid. k = H W generates the whole image in one step from the class alone: the lecture's
"too many pixels at once".

A prior over a VQ-VAE's codes (van den Oord et al. 2017, "Neural Discrete Representation
Learning", sec. 3.2; `genlab train pixelcnn --prior VQVAE_RUN`): the same network on the code
grid (7x7 for 28x28 images), one K-ary code per position, read through an embedding of the K
codes and predicted by a softmax over them (`levels` = K). The frozen VQ-VAE lives in the
model (`vqvae`, loaded from RUN/frozen.safetensors when the run is created, kept in eval mode):
training encodes each batch to codes, and `sample` draws a code grid and decodes it to images.
`log_prob` is then the log-likelihood of the codes, not of the pixels.

Sampling (`sample`) runs the network incrementally: per row one pass of the vertical stack on
that row, per pixel one pass of the horizontal stack and the head on that pixel, every layer
reading the earlier rows and pixels from caches. It draws exactly what re-running the whole
network for every pixel (`sample_naive`) draws, at a fraction of the cost.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from genlab.data import Batch
from genlab.errors import GenlabError
from genlab.family import (
    CONDITIONAL,
    FROZEN,
    Configured,
    Family,
    LoadedRun,
    image_config,
    image_fields,
    image_options,
    num_classes,
    pick,
    refuse_binarized_colour,
)
from genlab.options import Option

HEADS = ("softmax", "logistic")
LN2 = math.log(2)


@dataclass(frozen=True)
class PixelCNNConfig:
    """Attributes:
    channels: image channels (1 grayscale, 3 RGB; the channels of one pixel are drawn
        independently given the earlier pixels); 1 for a prior (one code per position).
    image_size: image side in pixels; a prior's: the side of the code grid (7).
    width: channels of each gated layer's stacks.
    layers: gated layers; the receptive field grows by one row and one column per layer.
    kernel: odd kernel width n: the vertical stack convolves (n // 2 + 1) x n, the horizontal
        1 x (n // 2 + 1).
    head: the output distribution: "logistic", the discretized logistic mixture of
        PixelCNN++, or "softmax" over the intensities; None picks logistic for 8-bit images
        (lower bits/dim per CPU-minute here, bench/pixelcnn_size.py) and softmax (a Bernoulli)
        for binarized ones.
    mixtures: logistic components per pixel (head "logistic").
    head_width: channels of the output head's hidden 1x1 convolution.
    binarize: model binarized images (2 levels): training draws each pixel as 1 with its
        intensity as the probability, afresh every step (dynamic binarization).
    num_classes: > 0 makes a class-conditional model (the class gates every layer).
    pixels_per_step: pixels emitted per step, independently of each other: 1 is the PixelCNN;
        4 (2x2 patches), 28 (a row), 196 (7 rows) or 784 (all at once) show the blur of
        generating too many pixels at once.
    vqvae: the first stage's VQVAEConfig as a dict (a prior over its codes); None for a
        PixelCNN of pixels.
    """

    channels: int = 1
    image_size: int = 28
    width: int = 32
    layers: int = 6
    kernel: int = 3
    head: str | None = None
    mixtures: int = 5
    head_width: int = 64
    binarize: bool = False
    num_classes: int = 0
    pixels_per_step: int = 1
    vqvae: dict[str, Any] | None = None

    def __post_init__(self):
        if self.head is None:
            categorical = self.binarize or self.vqvae is not None
            object.__setattr__(self, "head", "softmax" if categorical else "logistic")

    @property
    def levels(self) -> int:
        """Values of one position: 2 binarized, a prior's K codes, else 256 intensities."""
        if self.vqvae is not None:
            return self.vqvae["codebook_size"]
        return 2 if self.binarize else 256

    @property
    def block(self) -> tuple[int, int]:
        """(rows, columns) of the pixels emitted in one step."""
        return block_shape(self.pixels_per_step, self.image_size)


def block_shape(k: int, side: int) -> tuple[int, int]:
    """The block of k pixels of a side x side image: whole rows when side divides k, else a
    square, else a strip of one row; a one-line error when k fits none of these."""
    if k >= 1 and k % side == 0 and side % (k // side) == 0:
        return k // side, side
    s = math.isqrt(k) if k >= 1 else 0
    if k >= 1 and s * s == k and side % s == 0:
        return s, s
    if 1 <= k < side and side % k == 0:
        return 1, k
    raise GenlabError(
        f"--pixels-per-step {k} does not divide a {side}x{side} image into blocks: use a "
        f"divisor of {side} (a strip), a square whose side divides {side} (4 = 2x2), or a "
        f"multiple of {side} that divides {side * side} (whole rows)"
    )


def to_blocks(x: torch.Tensor, block: tuple[int, int]) -> torch.Tensor:
    """(B, C, H, W) -> (B, C * bh * bw, H / bh, W / bw): each block of pixels is one position."""
    bh, bw = block
    B, C, H, W = x.shape
    x = x.reshape(B, C, H // bh, bh, W // bw, bw).permute(0, 1, 3, 5, 2, 4)
    return x.reshape(B, C * bh * bw, H // bh, W // bw)


def from_blocks(x: torch.Tensor, block: tuple[int, int], channels: int) -> torch.Tensor:
    """The inverse of `to_blocks`."""
    bh, bw = block
    B, _, h, w = x.shape
    x = x.reshape(B, channels, bh, bw, h, w).permute(0, 1, 4, 2, 5, 3)
    return x.reshape(B, channels, h * bh, w * bw)


def gate(a: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """The gated activation tanh(f) * sigmoid(g) of a = [f, g] along `dim`."""
    f, g = a.chunk(2, dim)
    return torch.tanh(f) * torch.sigmoid(g)


# ------------------------------------------------------------------------------ distributions


def discretized_logistic_log_prob(
    x: torch.Tensor, logit_pi: torch.Tensor, mu: torch.Tensor, log_s: torch.Tensor, levels: int
) -> torch.Tensor:
    """log P(x) of a mixture of logistics discretized to `levels` bins (Salimans et al. 2017).

    x (...) holds the level ids 0..levels-1; logit_pi, mu, log_s (..., m). Bin v covers
    [c_v - d, c_v + d] with centres c_v = 2 v / (levels - 1) - 1 and d = 1 / (levels - 1); the
    first bin extends to -inf, the last to +inf, so the levels' probabilities sum to 1. The
    middle bins use sigma(a) - sigma(b) = sigma(a) sigma(-b) (1 - exp(b - a)), exact in float
    arithmetic where PixelCNN++ switches to the density at the bin centre.
    """
    c = (2.0 * x.to(mu.dtype) / (levels - 1) - 1.0).unsqueeze(-1)
    inv_s = torch.exp(-log_s)
    a = inv_s * (c - mu + 1.0 / (levels - 1))  # upper edge
    b = inv_s * (c - mu - 1.0 / (levels - 1))  # lower edge
    upper = F.logsigmoid(a)  # the first bin: P(X <= upper edge)
    lower = F.logsigmoid(-b)  # the last bin: P(X > lower edge)
    middle = upper + lower + torch.log(-torch.expm1(b - a))
    first, last = (x == 0).unsqueeze(-1), (x == levels - 1).unsqueeze(-1)
    log_p = torch.where(first, upper, torch.where(last, lower, middle))
    return torch.logsumexp(log_p + F.log_softmax(logit_pi, -1), -1)


class Head(NamedTuple):
    """Per-position output parameters, split by kind: logits (B, P, levels) for a softmax, or
    (logit_pi, mu, log_s) each (B, P, m) for a logistic mixture; P = channels x block pixels."""

    kind: str
    params: tuple[torch.Tensor, ...]


# ------------------------------------------------------------------------------ the network


class GatedLayer(nn.Module):
    """One gated layer: vertical stack (rows above), horizontal stack (pixels to the left),
    the vertical-to-horizontal link, the class bias, the residual and the skip."""

    def __init__(self, c_in: int, config: PixelCNNConfig, first: bool):
        super().__init__()
        n, C = config.kernel, config.width
        self.first, self.kh, self.half = first, n // 2 + 1, n // 2
        self.v_conv = nn.Conv2d(c_in, 2 * C, (self.kh, n))
        self.h_conv = nn.Conv2d(c_in, 2 * C, (1, self.kh))
        self.v_to_h = nn.Conv2d(2 * C, 2 * C, 1)
        self.h_res = nn.Conv2d(C, C, 1)
        self.skip = nn.Conv2d(C, config.head_width, 1)
        self.cond = nn.Embedding(config.num_classes, 4 * C) if config.num_classes else None

    def forward(
        self, v: torch.Tensor, h: torch.Tensor, y: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(v, h) (B, c, H, W) -> (v, h, skip). The first layer's outputs at (i, j) see the
        input rows < i (vertical) and row i's columns < j (horizontal); a later layer's see
        its inputs up to and including (i, j)."""
        H, W = v.shape[-2:]
        if self.first:  # mask A: one more row of padding on top, one more column on the left
            v_pre = self.v_conv(F.pad(v, (self.half, self.half, self.kh, 0)))[:, :, :H]
            h_pre = self.h_conv(F.pad(h, (self.kh, 0, 0, 0)))[..., :W]
        else:  # mask B
            v_pre = self.v_conv(F.pad(v, (self.half, self.half, self.kh - 1, 0)))
            h_pre = self.h_conv(F.pad(h, (self.kh - 1, 0, 0, 0)))
        h_pre = h_pre + self.v_to_h(v_pre)
        if self.cond is not None:
            bias_v, bias_h = self.cond(y)[:, :, None, None].chunk(2, 1)
            v_pre, h_pre = v_pre + bias_v, h_pre + bias_h
        gated = gate(h_pre)
        h_out = self.h_res(gated) if self.first else h + self.h_res(gated)
        return gate(v_pre), h_out, self.skip(gated)


class PixelCNN(nn.Module):
    """Gated PixelCNN on the block grid; `loss` is the exact NLL, `sample` draws pixel by pixel."""

    def __init__(self, config: PixelCNNConfig):
        super().__init__()
        if config.head not in HEADS:
            raise GenlabError(f"head must be one of {', '.join(HEADS)}, got {config.head!r}")
        if config.kernel < 1 or config.kernel % 2 == 0:
            raise GenlabError(f"--kernel {config.kernel}: use an odd width (3, 5, 7)")
        if config.layers < 1 or config.width < 1 or config.mixtures < 1:
            raise GenlabError("layers, width and mixtures must be >= 1")
        self.config = config
        bh, bw = config.block
        self.grid = (config.image_size // bh, config.image_size // bw)
        self.positions = config.channels * bh * bw  # P: values emitted per step
        per_value = config.levels if config.head == "softmax" else 3 * config.mixtures
        inputs = self.positions
        if config.vqvae is not None:
            _check_prior(config)
            inputs = config.width  # the embedding of a position's code
        self.layers = nn.ModuleList(
            GatedLayer(inputs if i == 0 else config.width, config, i == 0)
            for i in range(config.layers)
        )
        self.out1 = nn.Conv2d(config.head_width, config.head_width, 1)
        self.out2 = nn.Conv2d(config.head_width, self.positions * per_value, 1)
        self.embed, self.vqvae = None, None
        if config.vqvae is not None:
            from genlab.io import config_from_dict
            from genlab.models.vqvae import VQVAE, VQVAEConfig

            self.embed = nn.Embedding(config.levels, config.width)
            vq = config_from_dict(VQVAEConfig, config.vqvae, "the first stage's config")
            self.vqvae = VQVAE(vq).requires_grad_(False)

    # -- a prior's frozen first stage ----------------------------------------------------------

    def train(self, mode: bool = True) -> PixelCNN:
        super().train(mode)
        if self.vqvae is not None:
            self.vqvae.eval()  # the first stage is frozen, in training too
        return self

    def frozen_state(self) -> dict[str, torch.Tensor]:
        """The entries of the state dict that training never changes (a prior's VQ-VAE)."""
        return {k: v for k, v in self.state_dict().items() if k.startswith("vqvae.")}

    def load_frozen(self, run_dir: str | Path) -> None:
        """Load the VQ-VAE written when a prior's run was created (RUN/frozen.safetensors);
        the training loop calls this before the first step of a new run."""
        from genlab.io import load_weights

        if self.vqvae is None:
            return
        path = Path(run_dir) / FROZEN
        state = load_weights(path)
        missing = sorted(set(self.frozen_state()) - set(state))
        if missing:
            raise GenlabError(f"{path}: lacks {missing[:3]}...; recreate the run")
        self.load_state_dict(state, strict=False)

    # -- values ------------------------------------------------------------------------------

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        """Intensities in [0, 1] -> level ids (long): 0..255, or 0/1 thresholded at 1/2."""
        L = self.config.levels
        return (x * (L - 1)).round().clamp(0, L - 1).long()

    def encode(self, v: torch.Tensor) -> torch.Tensor:
        """Level ids (B, P, ...) -> network inputs in [-1, 1] (B, P, ...); a prior's code ids
        (B, 1, ...) -> their embeddings (B, width, ...)."""
        if self.embed is not None:
            return self.embed(v[:, 0]).movedim(-1, 1)
        return v.to(self.out2.weight.dtype) * (2.0 / (self.config.levels - 1)) - 1.0

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """A prior's values of images: the frozen VQ-VAE's code ids of x (B, C, H, W) in
        [0, 1] -> (B, 1, h, w)."""
        with torch.no_grad():
            return self.vqvae.codes(x)[:, None]

    def binarize(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Dynamic binarization: 1 where u < x (u uniform), as level ids."""
        return (u < x).long()

    # -- the network -------------------------------------------------------------------------

    def head(self, skip: torch.Tensor) -> Head:
        """Summed skips (B, S, h, w) -> the output parameters (B, P, h, w, ...)."""
        return self.params(self.out2(F.relu(self.out1(F.relu(skip)))))

    def params(self, out: torch.Tensor) -> Head:
        """The head's last output (B, P * per value, h, w) split into the parameters."""
        B, _, h, w = out.shape
        out = out.reshape(B, self.positions, -1, h, w).movedim(2, -1)
        if self.config.head == "softmax":
            return Head("softmax", (out,))
        logit_pi, mu, log_s = out.chunk(3, -1)
        return Head("logistic", (logit_pi, mu, log_s.clamp(min=-7.0)))

    def forward(self, v: torch.Tensor, y: torch.Tensor | None = None) -> Head:
        """Level ids on the block grid (B, P, h, w) -> the output parameters at every position,
        each from the positions before it only."""
        return self.network(self.encode(v), y)

    def network(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Head:
        """`forward` on the network's inputs x (B, P, h, w) in [-1, 1] (differentiable in x)."""
        v, h, skip = x, x, None
        for layer in self.layers:
            v, h, s = layer(v, h, y)
            skip = s if skip is None else skip + s
        return self.head(skip)

    def log_prob_values(self, out: Head, v: torch.Tensor) -> torch.Tensor:
        """log p of the level ids v (B, P, h, w) under the parameters `out` (same positions)."""
        if out.kind == "softmax":
            logits = _wide(out.params[0])
            return torch.gather(F.log_softmax(logits, -1), -1, v.unsqueeze(-1)).squeeze(-1)
        logit_pi, mu, log_s = (_wide(p) for p in out.params)
        return discretized_logistic_log_prob(v, logit_pi, mu, log_s, self.config.levels)

    def labels(self, y: torch.Tensor | None, n: int, device: torch.device) -> torch.Tensor | None:
        """Class ids (n,) of a conditional model (None cycles the classes), else None."""
        K = self.config.num_classes
        if not K:
            return None
        if y is None:
            return torch.arange(n, device=device) % K
        y = torch.as_tensor(y, device=device).long().reshape(-1)
        if y.shape[0] != n or y.min() < 0 or y.max() >= K:
            raise GenlabError(f"a conditional PixelCNN needs {n} class ids in [0, {K})")
        return y

    def log_prob(self, levels: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Exact log p(x) in nats, (B,), of images given as level ids (B, C, H, W); for a
        prior, of code grids (B, 1, h, w) (`codes`): a likelihood of codes, not of pixels."""
        v = to_blocks(levels, self.config.block)
        out = self(v, self.labels(y, v.shape[0], v.device))
        return self.log_prob_values(out, v).flatten(1).sum(1)

    def loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """NLL in nats per dimension (mean); logs bits/dim."""
        x = batch.x
        if self.vqvae is not None:
            levels = self.codes(x)
        elif self.config.binarize:
            levels = self.binarize(x, batch.shard.rand(x.shape, device=x.device))
        else:
            levels = self.quantize(x)
        y = batch.y if self.config.num_classes else None
        nll = -self.log_prob(levels, y) / levels[0].numel()
        loss = nll.mean()
        per = "bits_per_code" if self.vqvae is not None else "bpd"  # a prior's: of its codes
        return loss, {per: loss.detach() / LN2}

    # -- sampling ----------------------------------------------------------------------------

    def draw(self, out: Head, generator: torch.Generator | None, temperature: float, mean: bool):
        """Level ids (B, P) from the parameters of one position (B, P, ...): a draw at the
        temperature (softmax: logits / T; logistic: mixture logits / T, scales x T) by the
        Gumbel-max trick and the logistic's inverse CDF, or the distribution's mean rounded."""
        L = self.config.levels
        if out.kind == "softmax":
            logits = _wide(out.params[0])
            if mean:
                p = torch.softmax(logits, -1)
                return (p * torch.arange(L, dtype=p.dtype, device=p.device)).sum(-1).round().long()
            u = _uniform(logits.shape, generator, logits)
            return (logits / temperature - torch.log(-torch.log(u))).argmax(-1)
        logit_pi, mu, log_s = (_wide(p) for p in out.params)
        if mean:
            x = (torch.softmax(logit_pi, -1) * mu).sum(-1)
        else:
            u = _uniform(logit_pi.shape, generator, logit_pi)
            k = (logit_pi / temperature - torch.log(-torch.log(u))).argmax(-1, keepdim=True)
            m, s = mu.gather(-1, k).squeeze(-1), log_s.gather(-1, k).squeeze(-1)
            u = _uniform(m.shape, generator, m)
            x = m + torch.exp(s) * temperature * (torch.log(u) - torch.log1p(-u))
        return ((x.clamp(-1, 1) + 1) * (L - 1) / 2).round().long()

    def _start(self, n, y, x0, start_row):
        device = next(self.parameters()).device
        h, w = self.grid
        v = torch.zeros(n, self.positions, h, w, dtype=torch.long, device=device)
        if x0 is not None:
            values = self.codes if self.vqvae is not None else self.quantize
            v[:, :, :start_row] = to_blocks(values(x0.to(device)), self.config.block)[
                :, :, :start_row
            ]
        return v, self.labels(y, n, device)

    def _finish(self, v: torch.Tensor) -> torch.Tensor:
        if self.vqvae is not None:  # a prior's code grid, decoded
            return self.vqvae.decode_codes(v[:, 0]).float()
        x = from_blocks(v, self.config.block, self.config.channels)
        return x.float() / (self.config.levels - 1)

    @torch.no_grad()
    def sample_naive(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        y: torch.Tensor | None = None,
        temperature: float = 1.0,
        mean: bool = False,
        x0: torch.Tensor | None = None,
        start_row: int = 0,
    ) -> torch.Tensor:
        """`sample` by running the whole network once per position: the reference."""
        v, y = self._start(n, y, x0, start_row)
        h, w = self.grid
        for i in range(start_row, h):
            for j in range(w):
                out = self(v, y)
                at = Head(out.kind, tuple(p[:, :, i, j] for p in out.params))
                v[:, :, i, j] = self.draw(at, generator, temperature, mean)
        return self._finish(v)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        y: torch.Tensor | None = None,
        temperature: float = 1.0,
        mean: bool = False,
        x0: torch.Tensor | None = None,
        start_row: int = 0,
        callback: Callable[[int, torch.Tensor], None] | None = None,
    ) -> torch.Tensor:
        """n images drawn position by position, with the network run incrementally.

        Args:
            n: number of images.
            generator: source of all randomness (the same seed gives the same images, and the
                same images as `sample_naive`).
            y: (n,) class ids of a conditional model; None cycles the classes.
            temperature: > 0; below 1 sharpens each pixel's distribution, above 1 flattens it.
            mean: emit each pixel's mean (rounded) instead of a draw.
            x0: (n, C, H, W) images in [0, 1] whose block rows < start_row are kept (completion;
                a prior keeps the rows of their codes).
            start_row: the first block row to generate.
            callback: called after each position with (positions done, the images so far as
                level ids on the block grid (n, P, h, w)); for progress bars and animations.

        Returns:
            (n, C, H, W) in [0, 1] (a prior's: the decoded code grids).
        """
        if temperature <= 0:
            raise GenlabError(f"--temperature {temperature}: use a value > 0")
        if mean and self.vqvae is not None:
            raise GenlabError("a prior's codes are categories: they have no mean; draw them")
        v, y = self._start(n, y, x0, start_row)
        h, w = self.grid
        cache = _Cache(self, n, v, y)
        done = 0
        for i in range(h):
            cache.row(i)
            if i < start_row:
                continue
            for j in range(w):
                v[:, :, i, j] = self.draw(cache.pixel(i, j), generator, temperature, mean)
                cache.put(i, j, v[:, :, i, j])
                done += 1
                if callback is not None:
                    callback(done, v)
        return self._finish(v)


class _Cache:
    """The incremental forward pass of `PixelCNN.sample`: per layer, the vertical stack's outputs
    of the rows done (zero-padded as the convolutions pad them), and the horizontal stack's
    outputs of the current row. Every convolution is applied as a matrix product to the one
    window it needs."""

    def __init__(self, model: PixelCNN, n: int, v: torch.Tensor, y: torch.Tensor | None):
        self.model, self.y = model, y
        first = model.layers[0]
        kh, half = first.kh, first.half
        h, w = model.grid
        dtype = next(model.parameters()).dtype
        x = model.encode(v).to(dtype)
        # layer 0 reads the image: rows padded by kh on top, columns by `half` on each side;
        # the horizontal stack reads row i padded by kh on the left
        self.x = F.pad(x, (half, half, kh, 0))
        self.x_row = x.new_zeros(n, x.shape[1], w + kh)
        C = model.config.width
        self.v = [x.new_zeros(n, C, h + kh - 1, w + 2 * half) for _ in model.layers[1:]]
        self.h = [x.new_zeros(n, C, w + kh - 1) for _ in model.layers[:-1]]
        self.link: list[torch.Tensor] = []  # per layer: v_to_h(v_pre) of the current row
        self.bias = []  # per layer: (bias_v, bias_h) of the classes, or None
        self.weights = []
        for layer in model.layers:
            hc = layer.h_conv.weight
            self.weights.append(
                (
                    hc.reshape(hc.shape[0], -1),
                    layer.h_conv.bias,
                    layer.v_to_h.weight.flatten(1),
                    layer.v_to_h.bias,
                    layer.h_res.weight.flatten(1),
                    layer.h_res.bias,
                    layer.skip.weight.flatten(1),
                    layer.skip.bias,
                )
            )
            if layer.cond is not None:
                bias_v, bias_h = layer.cond(y).chunk(2, 1)
                self.bias.append((bias_v[:, :, None, None], bias_h))
            else:
                self.bias.append(None)
        self.out = (
            model.out1.weight.flatten(1),
            model.out1.bias,
            model.out2.weight.flatten(1),
            model.out2.bias,
        )

    def row(self, i: int) -> None:
        """The vertical stack at row i of every layer (it reads rows < i of the image)."""
        model = self.model
        self.link = []
        for k, layer in enumerate(model.layers):
            kh, half = layer.kh, layer.half
            source = self.x if k == 0 else self.v[k - 1]
            v_pre = layer.v_conv(source[:, :, i : i + kh])  # (n, 2C, 1, w)
            self.link.append(F.linear(v_pre[:, :, 0].transpose(1, 2), *self.weights[k][2:4]))
            if self.bias[k] is not None:
                v_pre = v_pre + self.bias[k][0]
            if k + 1 < len(model.layers):
                w = v_pre.shape[-1]
                self.v[k][:, :, i + kh - 1, half : half + w] = gate(v_pre)[:, :, 0]

    def pixel(self, i: int, j: int) -> Head:
        """The horizontal stack and the head at (i, j), from the row's caches."""
        model = self.model
        skip = None
        h_in = None
        for k, layer in enumerate(model.layers):
            kh = layer.kh
            hw, hb, _, _, rw, rb, sw, sb = self.weights[k]
            if k == 0:
                window = self.x_row[:, :, j : j + kh]
            else:
                window = self.h[k - 1][:, :, j : j + kh]
                h_in = window[:, :, -1]
            h_pre = F.linear(window.flatten(1), hw, hb) + self.link[k][:, j]
            if self.bias[k] is not None:
                h_pre = h_pre + self.bias[k][1]
            gated = gate(h_pre)
            h_out = F.linear(gated, rw, rb)
            if k > 0:
                h_out = h_out + h_in
            if k + 1 < len(model.layers):
                self.h[k][:, :, j + kh - 1] = h_out
            s = F.linear(gated, sw, sb)
            skip = s if skip is None else skip + s
        w1, b1, w2, b2 = self.out
        out = F.linear(F.relu(F.linear(F.relu(skip), w1, b1)), w2, b2)
        return _at_origin(model.params(out[:, :, None, None]))

    def put(self, i: int, j: int, values: torch.Tensor) -> None:
        """Write the drawn level ids (n, P) at (i, j) into the caches layer 0 reads."""
        model = self.model
        kh, half = model.layers[0].kh, model.layers[0].half
        x = model.encode(values).to(self.x.dtype)
        self.x[:, :, i + kh, j + half] = x
        self.x_row[:, :, j + kh] = x


def _at_origin(out: Head) -> Head:
    """A head of a 1x1 grid with the grid dimensions dropped: params (B, P, ...)."""
    return Head(out.kind, tuple(p[:, :, 0, 0] for p in out.params))


def _wide(x: torch.Tensor) -> torch.Tensor:
    """x in at least float32 (a bf16 network's outputs are normalised in float32)."""
    return x if x.dtype == torch.float64 else x.float()


def _uniform(shape, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """U(0, 1) noise strictly inside (0, 1), drawn on the generator's device."""
    device = generator.device if generator is not None else like.device
    u = torch.rand(shape, generator=generator, device=device).to(like.device, like.dtype)
    return u.clamp_(1e-12, 1 - 1e-7)


def _check_prior(config: PixelCNNConfig) -> None:
    """A prior draws one code at a time from a softmax; a one-line error otherwise."""
    if config.binarize or config.pixels_per_step != 1 or config.head != "softmax":
        raise GenlabError(
            "a prior over VQ-VAE codes (--prior) draws one code at a time from a softmax: "
            "drop --binarize, --pixels-per-step and --head logistic"
        )


# ------------------------------------------------------------------------------ the family record

PRIOR = Option(
    "prior",
    "run",
    help="A VQ-VAE run: model the grids of its codes instead of pixels (a prior to sample from).",
    of=("vqvae",),
)


def configure(options: dict, data) -> Configured:
    """A PixelCNN for the training images' shape; --conditional takes the data's classes;
    --prior makes it a prior over the codes of a VQ-VAE run."""
    fields = image_fields(data)
    refuse_binarized_colour(options, data)
    block_shape(options.get("pixels_per_step") or 1, fields["image_size"])  # one-line error
    k = num_classes(data, "pixelcnn --conditional") if options.get("conditional") else 0
    if options.get("prior") is not None:
        return configure_prior(options, data, options["prior"], k)
    return Configured(image_config(PixelCNNConfig, options, data, num_classes=k))


def configure_prior(options: dict, data, run: LoadedRun, k: int) -> Configured:
    """A PixelCNN over the code grid of the VQ-VAE of `run`, which is frozen inside it."""
    vq = run.model
    c, h, _ = data.shape
    if (vq.config.channels, vq.config.image_size) != (c, h):
        raise GenlabError(
            f"--prior {run.path}: made for {vq.config.channels}x{vq.config.image_size} images, "
            f"the data is {c}x{h}"
        )
    fields = {"channels": 1, "image_size": vq.grid[0], "num_classes": k}
    head = options.get("head") or "softmax"
    config = pick(PixelCNNConfig, options, **fields, head=head, vqvae=dataclasses.asdict(vq.config))
    _check_prior(config)
    with torch.random.fork_rng(devices=[]):  # building the model must not move the RNG
        model = PixelCNN(config)
    model.vqvae.load_state_dict(vq.state_dict())
    extra = {"first_stage": str(Path(run.path).resolve())}
    return Configured(config, extra, model.frozen_state())


FAMILY = Family(
    name="pixelcnn",
    summary="Gated PixelCNN: exact likelihood, pixel-by-pixel sampling (also k pixels at once).",
    config=PixelCNNConfig,
    model=PixelCNN,
    configure=configure,
    options=(
        *image_options(
            PixelCNNConfig,
            "vqvae",
            width={"min": 1, "max": 1024},
            layers={"min": 1, "max": 64},
            kernel={"choices": (1, 3, 5, 7, 9)},
            head={"choices": HEADS},
            mixtures={"min": 1, "max": 64},
            head_width={"min": 1, "max": 4096},
            pixels_per_step={"min": 1, "max": 1 << 20},
        ),
        CONDITIONAL,
        PRIOR,
    ),
)
