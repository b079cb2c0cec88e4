"""Training curves from a run's metrics.csv, and latent embeddings as CSV.

matplotlib is imported inside the functions (it is slow to import) and drawn with a bare
`Figure`, rendered by Agg: no pyplot, no global state, no display needed.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from genlab.atomic import atomic_path
from genlab.errors import GenlabError

if TYPE_CHECKING:
    import torch

# Columns that are not losses: the x axis, the schedule, and bookkeeping/throughput.
_X_COLUMNS = ("step",)
_LR_COLUMNS = ("lr", "learning_rate")
_SPEED_SUFFIXES = ("_per_s", "per_sec", "_seconds", "time")
_BOOKKEEPING = ("epoch", "wall_time", "time")


def read_metrics_rows(csv_path: Path, missing: str) -> list[dict[str, str]]:
    """The rows of a metrics CSV; one-line errors for a missing file (`missing`), a file that is
    not CSV text, or no rows. Damaged cells read as NaN (`numeric_column`), missing ones too."""
    try:
        with open(csv_path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        raise GenlabError(missing) from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise GenlabError(f"{csv_path}: not a readable CSV file ({e}); it is damaged") from None
    if not rows:
        raise GenlabError(f"{csv_path} has no rows yet: train for a few logging steps first")
    return rows


def numeric_column(rows: list[dict[str, str]], name: str) -> np.ndarray:
    """One column as float64 (empty or non-numeric cells -> NaN)."""

    def number(cell: str | None) -> float:
        try:
            return float(cell)
        except (TypeError, ValueError):
            return math.nan

    return np.array([number(r.get(name)) for r in rows], dtype=np.float64)


def _read_numeric_csv(csv_path: Path) -> dict[str, np.ndarray]:
    """Columns of a CSV as float arrays (empty or non-numeric cells -> NaN); all-NaN dropped."""
    rows = read_metrics_rows(
        csv_path, f"no metrics file at {csv_path}: point to a run's metrics.csv"
    )
    columns = {}
    for name in rows[0]:
        if name is None:
            continue
        values = numeric_column(rows, name)
        if not np.isnan(values).all():
            columns[name.strip()] = values
    return columns


def _moving_average(y: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average of the same length (shorter windows at the ends)."""
    kernel = np.ones(window)
    return np.convolve(y, kernel, mode="same") / np.convolve(np.ones_like(y), kernel, mode="same")


def _is_noisy(y: np.ndarray) -> bool:
    """Step-to-step jitter large next to the overall spread of the curve."""
    if y.size < 20 or np.std(y) == 0:
        return False
    return float(np.std(np.diff(y)) / np.std(y)) > 0.3


def _panel_kind(name: str) -> str:
    lower = name.lower()
    if lower in _LR_COLUMNS:
        return "lr"
    if lower in _BOOKKEEPING or lower.endswith(_SPEED_SUFFIXES):
        return "speed"
    return "loss"


def plot_metrics(
    csv_path: str | os.PathLike, out_png: str | os.PathLike, metadata: dict[str, str] | None = None
) -> Path:
    """Plot a training run's metrics.csv: one panel per loss-like column, lr and speed apart.

    All panels share the step axis. A noisy curve is drawn faint with a moving average over
    it; a positive curve that spans more than two decades gets a log scale.

    Args:
        csv_path: the CSV, columns `step` plus numeric columns (loss, recon, kl, lr, ...).
            Without a `step` column the row number is used.
        out_png: where to write the PNG (atomically).
        metadata: PNG tEXt chunks (command, seed, run).

    Returns:
        The path written.
    """
    from matplotlib.figure import Figure

    columns = _read_numeric_csv(Path(csv_path))
    step = columns.pop("step", None)
    x_label = "step"
    if step is None:
        step, x_label = np.arange(len(next(iter(columns.values()), []))), "row"
    panels = sorted(columns, key=lambda c: {"loss": 0, "lr": 1, "speed": 2}[_panel_kind(c)])
    if not panels:
        raise GenlabError(f"{csv_path} has no numeric columns besides step: nothing to plot")

    ncols = 1 if len(panels) <= 2 else 2
    nrows = math.ceil(len(panels) / ncols)
    fig = Figure(figsize=(6.0 * ncols, 2.6 * nrows), dpi=110, layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, sharex=True, squeeze=False)).ravel()
    for ax, name in zip(axes, panels, strict=False):
        ok = ~np.isnan(columns[name]) & ~np.isnan(step)
        xs, ys = step[ok], columns[name][ok]
        if _is_noisy(ys):
            window = max(3, xs.size // 25) | 1  # odd, about 4% of the run
            ax.plot(xs, ys, color="C0", alpha=0.25, lw=0.8)
            ax.plot(xs, _moving_average(ys, window), color="C0", lw=1.6, label=f"mean of {window}")
            ax.legend(loc="best", frameon=False, fontsize="small")
        else:
            ax.plot(xs, ys, color="C0", lw=1.4, marker="." if xs.size < 30 else None)
        if ys.size and (ys > 0).all() and ys.max() / ys.min() > 100.0:
            ax.set_yscale("log")
        ax.set_title(name, fontsize="medium")
        ax.grid(alpha=0.3)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    for ax in axes[max(0, len(panels) - ncols) : len(panels)]:
        ax.set_xlabel(x_label)
        ax.xaxis.set_tick_params(labelbottom=True)

    return save_figure(fig, out_png, metadata)


def plot_run_metrics(
    run: str | os.PathLike, out_png: str | os.PathLike, metadata: dict[str, str] | None = None
) -> Path:
    """`plot_metrics` of a run directory's metrics.csv (the default curves of a family)."""
    return plot_metrics(Path(run) / "metrics.csv", out_png, metadata)


def save_embeddings_csv(
    path: str | os.PathLike,
    z: torch.Tensor,
    labels: torch.Tensor | None,
    class_names: Sequence[str],
) -> Path:
    """Write latents as CSV, atomically: columns index,label,class_name,z0,...,z{D-1}.

    Floats are written with `repr`, so reading them back gives the same float32 values.

    Args:
        path: where to write.
        z: (N, D) latents.
        labels: (N,) class ids (-1 = unlabelled, empty class_name), or None.
        class_names: names indexed by class id.

    Returns:
        The path written.
    """
    z_np = z.detach().float().cpu().numpy()
    if z_np.ndim != 2:
        raise GenlabError(f"expected (N, D) latents, got shape {tuple(z_np.shape)}")
    n, d = z_np.shape
    labels_list = [-1] * n if labels is None else [int(v) for v in labels.reshape(-1).tolist()]
    if len(labels_list) != n:
        raise GenlabError(f"{len(labels_list)} labels for {n} latents: pass one label per row")

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["index", "label", "class_name", *(f"z{j}" for j in range(d))])
        for i, (label, row) in enumerate(zip(labels_list, z_np.tolist(), strict=True)):
            name = class_names[label] if 0 <= label < len(class_names) else ""
            writer.writerow([i, label, name, *(repr(v) for v in row)])
    return path


def figure_array(fig) -> np.ndarray:
    """A matplotlib figure as an (H, W, 3) uint8 array, through the Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def save_figure(fig, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> Path:
    """Write a matplotlib figure as PNG atomically, with `metadata` as PNG text."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(
            tmp, format="png", metadata={str(k): str(v) for k, v in (metadata or {}).items()}
        )
    return path
