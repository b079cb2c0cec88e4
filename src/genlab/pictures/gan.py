"""Pictures of GAN runs: the training curves with a guide to reading them, the generator-gradient
picture with measured points (`gan_gradients`), and a CycleGAN's translations (`translate`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from genlab.errors import GenlabError
from genlab.models.gan import PROBABILITY_LOSSES
from genlab.pictures import Picture
from genlab.plots import numeric_column, read_metrics_rows

GUIDE = """How to read these curves

Equilibrium: D(x) and D(G(z)) hover around 0.5
(ns/minimax; about 0 for hinge), the losses stay
flat and noisy with no trend. D cannot tell real
from fake: necessary, not sufficient; check samples.

D winning: D(x) -> 1 and D(G(z)) -> 0, loss_d -> 0.
The minimax loss saturates: G's gradient scales
with D(G(z)) and vanishes (grad_norm_g drops by
decades); the ns loss keeps a gradient 1 - D(G(z)).

Mode collapse: modes covered drops below the
number of classes (red marks) although the losses
may look healthy; the sample grids repeat a few
shapes. Divergence: grad norms climb by decades.

wgan-gp: -loss_d estimates the Wasserstein
distance (minus the penalty); it shrinks as G
improves. gp near 0: the critic is 1-Lipschitz."""


def _read(csv_path: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """Numeric columns as float arrays (empty cells NaN), and the missing_classes column."""
    missing = f"{csv_path}: missing; the run has not logged any step yet"
    rows = read_metrics_rows(csv_path, missing)
    columns = {k: numeric_column(rows, k) for k in rows[0] if k is not None}
    if "step" not in columns or "loss_d" not in columns:
        raise GenlabError(f"{csv_path}: not a GAN run's metrics (no step and loss_d columns)")
    return columns, [r.get("missing_classes") or "" for r in rows]


def _locate(run_or_csv: str | os.PathLike) -> tuple[Path, str | None]:
    """The metrics.csv of a run directory (or a CSV path) and the run's GAN loss if known."""
    from genlab.runs import Run

    path = Path(run_or_csv)
    csv_path = path / "metrics.csv" if path.is_dir() else path
    loss = None
    if (csv_path.parent / "config.json").is_file():
        loss = Run.open(csv_path.parent).config["model"].get("loss")
    return csv_path, loss


def _curve(ax, x: np.ndarray, y: np.ndarray, label: str, color: str) -> None:
    """A curve, drawn faint with a moving average over it when it is noisy."""
    from genlab.plots import _is_noisy, _moving_average

    ok = ~np.isnan(y)
    x, y = x[ok], y[ok]
    if _is_noisy(y):
        window = max(3, y.size // 25) | 1
        ax.plot(x, y, color=color, alpha=0.25, lw=0.8)
        ax.plot(x, _moving_average(y, window), color=color, lw=1.6, label=label)
    else:
        ax.plot(x, y, color=color, lw=1.4, label=label, marker="." if x.size < 30 else None)


def plot_gan_curves(
    run_or_csv: str | os.PathLike,
    out_png: str | os.PathLike,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Plot a GAN run: losses, D(x) and D(G(z)), gradient norms, modes covered, and a guide.

    Args:
        run_or_csv: a GAN run directory or its metrics.csv.
        out_png: where to write the PNG (atomically).
        metadata: PNG tEXt chunks (command, run).

    Returns:
        The path written.
    """
    from matplotlib.figure import Figure

    from genlab.plots import save_figure

    csv_path, loss = _locate(run_or_csv)
    c, missing = _read(csv_path)
    step = c["step"]
    fig = Figure(figsize=(15.0, 7.0), dpi=100, layout="constrained")
    (ax_loss, ax_d, ax_guide), (ax_grad, ax_modes, ax_extra) = fig.subplots(2, 3)
    fig.suptitle(f"{csv_path.parent.name}: GAN training ({loss or 'loss unknown'})")

    for key, label, color in (("loss_d", "loss_d", "C3"), ("loss_g", "loss_g", "C0")):
        if key in c:
            _curve(ax_loss, step, c[key], label, color)
    ax_loss.set_title("losses")

    probability = loss in PROBABILITY_LOSSES
    for key, label, color in (("d_real", "D(x)", "C2"), ("d_fake", "D(G(z))", "C1")):
        if key in c:
            _curve(ax_d, step, c[key], label, color)
    if probability:
        ax_d.axhline(0.5, color="gray", ls="--", lw=1, label="equilibrium 0.5")
        ax_d.set_ylim(-0.02, 1.02)
        ax_d.set_title("discriminator: D(x) on real, D(G(z)) on generated")
    else:
        ax_d.axhline(0.0, color="gray", ls="--", lw=1)
        ax_d.set_title("critic scores on real and generated images")

    for key, label, color in (("grad_norm_d", "D", "C3"), ("grad_norm_g", "G", "C0")):
        if key in c and np.isfinite(c[key]).any():
            _curve(ax_grad, step, c[key], label, color)
    ax_grad.set_yscale("log")
    ax_grad.set_title("gradient norms (before clipping)")

    if "modes_covered" in c and np.isfinite(c["modes_covered"]).any():
        ok = np.isfinite(c["modes_covered"])
        ax_modes.step(step[ok], c["modes_covered"][ok], where="post", color="C4", marker=".")
        short = [i for i in np.flatnonzero(ok) if missing[i]]
        ax_modes.scatter(step[short], c["modes_covered"][short], color="C3", zorder=3, s=30)
        ax_modes.axhline(10, color="gray", ls="--", lw=1, label="all 10 classes")
        if short:
            last = short[-1]
            ax_modes.text(
                0.02,
                0.04,
                f"step {step[last]:.0f} missing: " + missing[last].replace(";", ", "),
                transform=ax_modes.transAxes,
                fontsize="x-small",
                wrap=True,
            )
        ax_modes.set_ylim(0, 10.5)
        ax_modes.set_title("classes covered by 500 samples (shipped classifier)")
    else:
        ax_modes.text(0.5, 0.5, "no mode monitor\n(Fashion-MNIST 1x28x28 only)", ha="center")
        ax_modes.set_axis_off()

    if "gp" in c and np.isfinite(c["gp"]).any():
        _curve(ax_extra, step, c["gp"], "gradient penalty", "C5")
        ax_extra.set_title("gradient penalty E[(||grad f|| - 1)^2]")
    else:
        for key, color in (("lr_d", "C3"), ("lr_g", "C0")):
            if key in c:
                ax_extra.plot(step, c[key], color=color, label=key)
        ax_extra.set_title("learning rates")

    for ax in (ax_loss, ax_d, ax_grad, ax_modes, ax_extra):
        if ax.axison:
            ax.set_xlabel("step (one G update)")
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(loc="best", frameon=False, fontsize="small")
    ax_guide.set_axis_off()
    ax_guide.text(0.0, 1.0, GUIDE, va="top", ha="left", fontsize=9, family="monospace")
    return save_figure(fig, out_png, metadata)


def gradient_points(run_dir: str | os.PathLike) -> tuple[list[float], list[float]]:
    """A run's measured (mean D(G(z)), G's gradient norm) per logged row, for the picture.

    Raises:
        GenlabError: the run's loss has no probability D(G(z)) (hinge, wgan-gp).
    """
    csv_path, loss = _locate(run_dir)
    if loss not in PROBABILITY_LOSSES:
        raise GenlabError(
            f"{run_dir}: the gradient picture plots against D(G(z)), a probability only for "
            f"the minimax and ns losses; this run uses {loss or 'an unknown loss'}"
        )
    c, _ = _read(csv_path)
    ok = np.isfinite(c.get("d_fake_g", np.nan)) & np.isfinite(c.get("grad_norm_g", np.nan))
    if not ok.any():
        raise GenlabError(f"{csv_path}: no rows with d_fake_g and grad_norm_g")
    return c["d_fake_g"][ok].tolist(), c["grad_norm_g"][ok].tolist()


def gan_gradients(
    runs: list[str | os.PathLike],
    out: str | os.PathLike,
    metadata: dict[str, str] | None = None,
) -> str:
    """Why the minimax loss saturates: G's gradient against D(G(z)) for both losses, with one
    measured point per metrics.csv row of each GAN run (mean D(G(z)), G's gradient norm).
    Writes `out`; returns a note on what it shows."""
    from genlab.models.gan import GAN, plot_gradient_picture
    from genlab.runs import Run

    if not runs:
        raise GenlabError("give at least one GAN run")
    measured = {}
    for run in map(Run.of, runs):
        if run.family.model is not GAN:
            raise GenlabError(f"{run}: a {run.name} run; gan-gradients needs GAN runs")
        measured[f"{run.path.name} ({run.config['model']['loss']})"] = gradient_points(run)
    plot_gradient_picture(out, measured, metadata=metadata)
    return f"{sum(len(d) for d, _ in measured.values())} measured points"


class Translation(NamedTuple):
    """A folder translated by a CycleGAN: the images in (N, C, H, W) and out, in [0, 1], their
    file names, and the direction's label ("Sneaker -> Ankle boot")."""

    inputs: torch.Tensor
    outputs: torch.Tensor
    names: list[str]
    direction: str

    def save(self, out: str | os.PathLike, metadata: dict[str, str] | None = None) -> list[Path]:
        """One PNG per image into the folder `out`, keeping the file names (as .png)."""
        from genlab.images import save_png, to_uint8

        meta = {"software": "genlab", "direction": self.direction, **(metadata or {})}
        targets = [Path(n).with_suffix(".png") for n in self.names]
        if len(set(targets)) < len(targets):  # a.jpg and a.png: keep the suffixes
            targets = [Path(n + ".png") for n in self.names]
        return [
            save_png(Path(out) / target, to_uint8(image), {**meta, "source": name})
            for name, target, image in zip(self.names, targets, self.outputs, strict=True)
        ]

    def grid(self, shown: int = 32) -> Picture:
        """Rows of up to 8 inputs, each above its translations (blank tiles pad the last)."""
        x, y = self.inputs, self.outputs
        cols, shown = min(8, len(y)), min(shown, len(y))
        rows = []
        for i in range(0, shown, cols):
            pad = torch.ones(cols - len(y[i : i + cols]), *y.shape[1:])
            rows += [x[i : i + cols], pad, y[i : i + cols], pad]
        return Picture(torch.cat(rows), cols, {"direction": self.direction})


def translate(
    run: str | os.PathLike, images: str | os.PathLike, direction: str = "ab"
) -> Translation:
    """Translate every image of a folder (searched recursively) with a CycleGAN run, A to B
    ("ab") or B to A ("ba"); images are resized and centre-cropped to the run's size and
    channels, as in training."""
    from genlab.data.folder import read_images
    from genlab.runs import Run

    run = Run.of(run)
    model = run.model()
    if not hasattr(model, "translate"):
        raise GenlabError(f"{run}: a {run.name} run; translate needs a cyclegan")
    if direction not in ("ab", "ba"):
        raise GenlabError(f"--direction {direction}: use ab (A to B) or ba (B to A)")
    names, x = read_images(images, model.config.image_size, model.config.channels)
    device = next(model.parameters()).device
    with torch.inference_mode():
        parts = [model.translate(c.to(device).float() / 255, direction) for c in x.split(64)]
    y = torch.cat([p.cpu() for p in parts])
    label = dict(zip("ab", run.config.get("domains", ["A", "B"]), strict=True))
    return Translation(
        x.float() / 255, y.float(), list(names), f"{label[direction[0]]} -> {label[direction[1]]}"
    )
