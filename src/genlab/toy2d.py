"""Mode collapse made visible: GANs on 2-D mixtures of Gaussians.

The data are mixtures with known modes: 8 Gaussians on a ring (Metz et al. 2017, "Unrolled
Generative Adversarial Networks") or a 5x5 grid (Srivastava et al. 2017, "VEEGAN"). Because every
mode is known, mode collapse can be counted instead of guessed: `mode_coverage_2d` reports how
many modes the samples cover and what fraction of samples are of high quality (within 3 standard
deviations of some mode), the metric of those papers.

`train_toy` trains a small MLP generator and discriminator with the losses of
`genlab.models.gan` (one implementation for images and points), keeping snapshots of samples
from fixed noise; `animate` turns the snapshots into a GIF. `collapse=True` zeroes the
generator's input noise, so every sample is the same point: a deliberately collapsed baseline.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from genlab.errors import GenlabError
from genlab.models.gan import LOSSES, gradient_penalty
from genlab.plots import figure_array
from genlab.runtime import one_thread


class ToyData(NamedTuple):
    """Points (n, 2) and the mixture's mode centres (k, 2)."""

    x: torch.Tensor
    centres: torch.Tensor


class Coverage(NamedTuple):
    """Modes with enough samples within 3 std, and the fraction of samples within 3 std of any."""

    modes_covered: int
    high_quality: float


class ToyResult(NamedTuple):
    """A toy run: samples of fixed noise at each snapshot, their coverage, the data's modes."""

    data: str
    loss: str
    snapshots: list[tuple[int, torch.Tensor]]  # (step, (m, 2) samples), step 0 = untrained
    coverage: list[Coverage]  # one per snapshot
    samples: torch.Tensor  # (m, 2): the last snapshot's samples
    centres: torch.Tensor  # (k, 2)
    std: float


# -- data: pure functions of (n, shape parameters, generator) -----------------------------------


def _mixture(
    n: int, centres: torch.Tensor, std: float, generator: torch.Generator | None
) -> ToyData:
    """n points from an equal-weight mixture of N(centre, std^2 I)."""
    idx = torch.randint(len(centres), (n,), generator=generator)
    x = centres[idx] + std * torch.randn(n, 2, generator=generator)  # (n, 2)
    return ToyData(x, centres)


def ring(
    n: int,
    k: int = 8,
    radius: float = 2.0,
    std: float = 0.02,
    *,
    generator: torch.Generator | None = None,
) -> ToyData:
    """k Gaussians evenly spaced on a circle of `radius` (Metz et al. 2017 use 8, 2.0, 0.02)."""
    angle = 2 * math.pi * torch.arange(k, dtype=torch.float64) / k
    centres = radius * torch.stack([angle.cos(), angle.sin()], 1)  # (k, 2)
    return _mixture(n, centres.float(), std, generator)


def grid(
    n: int,
    side: int = 5,
    spacing: float = 2.0,
    std: float = 0.05,
    *,
    generator: torch.Generator | None = None,
) -> ToyData:
    """side x side Gaussians on a square grid centred at 0 (VEEGAN: 5x5, spacing 2, std 0.05)."""
    axis = (torch.arange(side, dtype=torch.float32) - (side - 1) / 2) * spacing  # (side,)
    centres = torch.cartesian_prod(axis, axis)  # (side^2, 2)
    return _mixture(n, centres, std, generator)


DATASETS = {"ring": ring, "grid": grid}
DEFAULT_STD = {"ring": 0.02, "grid": 0.05}


def mode_coverage_2d(
    samples: torch.Tensor, centres: torch.Tensor, std: float, min_fraction: float | None = None
) -> Coverage:
    """Count covered modes and high-quality samples (Srivastava et al. 2017; Metz et al. 2017).

    A sample is of high quality when it lies within 3 std of its nearest mode; a mode is covered
    when at least `min_fraction` of all samples (default 1 / (4k), a quarter of its fair share,
    and at least one sample) are high-quality samples next to it.

    Args:
        samples: (m, 2) generated points.
        centres: (k, 2) mode centres.
        std: the modes' standard deviation.
        min_fraction: share of samples a mode needs to count as covered.
    """
    k = len(centres)
    dist, nearest = torch.cdist(samples.float(), centres.float()).min(1)  # (m,), (m,)
    good = dist <= 3 * std
    counts = torch.bincount(nearest[good], minlength=k)  # (k,)
    share = 1 / (4 * k) if min_fraction is None else min_fraction
    needed = max(1, math.ceil(share * len(samples)))
    return Coverage(int((counts >= needed).sum()), good.float().mean().item())


# -- networks ----------------------------------------------------------------------------------


def _mlp(sizes: list[int], act: type[nn.Module]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


class ToyGenerator(nn.Module):
    """MLP z (B, latent_dim) -> points (B, 2); `collapse` zeroes z so every output is one point."""

    def __init__(self, latent_dim: int = 2, hidden: int = 64, collapse: bool = False):
        super().__init__()
        self.collapse = collapse
        self.net = _mlp([latent_dim, hidden, hidden, hidden, 2], nn.ReLU)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(torch.zeros_like(z) if self.collapse else z)


class ToyDiscriminator(nn.Module):
    """MLP points (B, 2) -> logits (B,) with LeakyReLU(0.2); `y` is accepted and ignored."""

    def __init__(self, hidden: int = 64):
        super().__init__()
        self.net = _mlp([2, hidden, hidden, hidden, 1], lambda: nn.LeakyReLU(0.2))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(x).squeeze(1)


# -- training ----------------------------------------------------------------------------------


class ToySnapshot(NamedTuple):
    """One moment of a toy GAN's training, as `toy_training` yields it."""

    step: int
    samples: torch.Tensor  # (n_samples, 2): G of the fixed noise batch
    coverage: Coverage
    centres: torch.Tensor  # (k, 2)
    std: float
    discriminator: nn.Module  # D at this step (live: it keeps training after the yield)
    losses: tuple[float, float]  # (D's loss, G's loss) of the last step; nan at step 0


def toy_training(
    data: str = "ring",
    loss: str = "ns",
    *,
    steps: int = 2000,
    batch: int = 128,
    lr: float = 2e-3,
    lr_d: float | None = None,
    seed: int = 0,
    snapshot_every: int = 100,
    n_samples: int = 1000,
    std: float | None = None,
    collapse: bool = False,
    latent_dim: int = 2,
    hidden: int = 64,
    n_critic: int = 1,
    gp_weight: float = 0.1,
    betas: tuple[float, float] = (0.5, 0.9),
) -> Iterator[ToySnapshot]:
    """Train a toy GAN on fresh mixture samples every step, yielding a snapshot at step 0, every
    `snapshot_every` steps and at the end (`train_toy` collects them; the web app's GAN lab draws
    each as it comes). Deterministic given `seed`.

    Runs on one thread (`genlab.runtime.one_thread`). The global RNG is left untouched.

    Args:
        data: "ring" or "grid".
        loss: a key of `genlab.models.gan.LOSSES` ("minimax", "ns", "hinge", "wgan-gp").
        steps: generator steps.
        batch: real and fake points per step.
        lr: Adam learning rate of the generator (and of the discriminator unless `lr_d`).
        seed: seeds the weights, the data and the noise.
        snapshot_every: steps between snapshots (plus one at step 0 and one at the end).
        n_samples: points per snapshot, all from one fixed noise batch.
        std: the modes' standard deviation; None takes the data's default (DEFAULT_STD).
        collapse: zero the generator's input noise (a deliberately collapsed generator).
        latent_dim, hidden: size of z and of the three hidden layers of both MLPs. z is 2-D like
            the data: with 16 dimensions the ring took far longer (1500 steps, std 0.05, seeds
            0-2: 6, 1 and 1 modes covered against 7, 5 and 8 with 2).
        n_critic: discriminator steps per generator step.
        gp_weight: gradient-penalty weight for "wgan-gp". 0.1, not the images' 10: on the ring
            (std 0.1, 400 steps, n_critic 5, seed 0) 0.1 covered 8 of 8 modes and 10 none.
        betas: Adam's betas for both players. beta2 = 0.9 (as in Gulrajani et al. 2017) adapts
            faster than 0.999: with it 400 steps covered 6-8 of 8 modes (std 0.1, seeds 0-7),
            with (0.5, 0.999) and lr 5e-3 0-8.
        lr_d: the discriminator's learning rate (None: `lr`).
    """
    if data not in DATASETS:
        raise GenlabError(f"data must be one of {sorted(DATASETS)}, got {data!r}")
    if loss not in LOSSES:
        raise GenlabError(f"loss must be one of {sorted(LOSSES)}, got {loss!r}")
    if min(steps, batch, snapshot_every, n_samples, n_critic) < 1:
        raise GenlabError("steps, batch, snapshot_every, n_samples and n_critic must be >= 1")
    lr_d = lr if lr_d is None else lr_d
    if not (lr > 0 and lr_d > 0):
        raise GenlabError(f"learning rates must be > 0, got {lr} (G) and {lr_d} (D)")
    std = DEFAULT_STD[data] if std is None else std
    sample_data = DATASETS[data]
    d_loss_fn, g_loss_fn = LOSSES[loss]

    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # seeded weights without touching the global RNG
        torch.manual_seed(seed)
        G = ToyGenerator(latent_dim, hidden, collapse)
        D = ToyDiscriminator(hidden)
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=betas, fused=True)
    opt_d = torch.optim.Adam(D.parameters(), lr=lr_d, betas=betas, fused=True)
    z_fixed = torch.randn(n_samples, latent_dim, generator=gen)
    centres = sample_data(1, std=std, generator=gen).centres
    losses = (math.nan, math.nan)

    def snapshot(step: int) -> ToySnapshot:
        with torch.no_grad():
            samples = G(z_fixed)  # (n_samples, 2)
        cover = mode_coverage_2d(samples, centres, std)
        return ToySnapshot(step, samples, cover, centres, std, D, losses)

    with one_thread():
        yield snapshot(0)
        for step in range(1, steps + 1):
            # 1. n_critic discriminator steps on fresh real points and detached fakes
            for _ in range(n_critic):
                x_real = sample_data(batch, std=std, generator=gen).x  # (B, 2)
                with torch.no_grad():
                    x_fake = G(torch.randn(batch, latent_dim, generator=gen))  # (B, 2)
                real_logits, fake_logits = D(torch.cat([x_real, x_fake])).chunk(2)  # one pass
                loss_d = d_loss_fn(real_logits, fake_logits)
                if loss == "wgan-gp":
                    gp = gradient_penalty(D, x_real, x_fake, generator=gen)
                    loss_d = loss_d + gp_weight * gp
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                opt_d.step()
            # 2. one generator step (D's gradients from it are cleared before D's next step)
            loss_g = g_loss_fn(D(G(torch.randn(batch, latent_dim, generator=gen))))
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            if step % snapshot_every == 0 or step == steps:
                losses = (loss_d.item(), loss_g.item())
                yield snapshot(step)


def train_toy(data: str = "ring", loss: str = "ns", **options) -> ToyResult:
    """Train a toy GAN on fresh mixture samples every step; deterministic given `seed`. Takes
    `toy_training`'s arguments and returns every snapshot it yields."""
    shots = list(toy_training(data, loss, **options))
    last = shots[-1]
    return ToyResult(
        data, loss, [(s.step, s.samples) for s in shots], [s.coverage for s in shots],
        last.samples, last.centres, last.std,
    )  # fmt: skip


# -- pictures ----------------------------------------------------------------------------------


def animate(result: ToyResult, path_gif: str | os.PathLike, duration_ms: int = 200) -> Path:
    """Write one GIF frame per snapshot: the samples over the mode centres, coverage in the title.

    Returns:
        The path written.
    """
    from matplotlib.figure import Figure

    from genlab.images import save_gif

    centres = result.centres.numpy()
    lo, hi = _limits(centres)
    k = len(centres)
    frames = []
    for (step, samples), cov in zip(result.snapshots, result.coverage, strict=True):
        fig = Figure(figsize=(4.0, 4.0), dpi=80, layout="constrained")
        ax = fig.subplots()
        pts = samples.numpy()
        # open circles under the samples, so points that sit on a mode stay visible
        ax.scatter(centres[:, 0], centres[:, 1], s=80, facecolors="none", edgecolors="C3")
        ax.scatter(pts[:, 0], pts[:, 1], s=4, alpha=0.6, color="C0", linewidths=0)
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(
            f"{result.data}, {result.loss}, step {step}: {cov.modes_covered}/{k} modes, "
            f"{cov.high_quality:.0%} high quality",
            fontsize="small",
        )
        frames.append(figure_array(fig))
    return save_gif(path_gif, frames, duration_ms=duration_ms)


def _limits(centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The plotting window around a mixture's modes."""
    margin = 0.25 * float(np.ptp(centres, axis=0).max()) + 0.5
    return centres.min(0) - margin, centres.max(0) + margin


@torch.no_grad()
def frame(
    shot: ToySnapshot, title: str = "", size: float = 4.5, resolution: int = 120
) -> np.ndarray:
    """One snapshot as an RGB image: D's output as a heat map under the samples and the modes
    (the GAN Lab view: where D says "real" is warm). Returns (H, W, 3) uint8."""
    from matplotlib.figure import Figure

    centres = shot.centres.numpy()
    lo, hi = _limits(centres)
    xs, ys = np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution)
    grid_points = torch.from_numpy(np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)).float()
    with one_thread():
        heat = shot.discriminator(grid_points).reshape(resolution, resolution).numpy()
    fig = Figure(figsize=(size, size), dpi=80, layout="constrained")
    ax = fig.subplots()
    ax.imshow(heat, origin="lower", extent=(lo[0], hi[0], lo[1], hi[1]), cmap="RdBu_r",
              alpha=0.55, aspect="auto")  # fmt: skip
    pts = shot.samples.numpy()
    ax.scatter(centres[:, 0], centres[:, 1], s=80, facecolors="none", edgecolors="k")
    ax.scatter(pts[:, 0], pts[:, 1], s=4, alpha=0.7, color="C2", linewidths=0)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    k, cov = len(centres), shot.coverage
    ax.set_title(title or f"step {shot.step}: {cov.modes_covered}/{k} modes, "
                 f"{cov.high_quality:.0%} high quality", fontsize="small")  # fmt: skip
    return figure_array(fig)
