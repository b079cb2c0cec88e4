"""Training curves of a run, as its family draws them: the pictures package's side of the
registry (models never import picture code, so the curves are mapped to family names here)."""

from __future__ import annotations

import os
from pathlib import Path

from genlab.errors import GenlabError
from genlab.pictures.agent import plot_agent
from genlab.pictures.gan import plot_gan_curves
from genlab.plots import plot_run_metrics
from genlab.runs import Run

CURVES = {
    "gan": plot_gan_curves,
    "cgan": plot_gan_curves,
    "stylegan": plot_gan_curves,
    "dqn": plot_agent,
    "qtable": plot_agent,
}
"""The families with curves of their own: (run, out, metadata) -> Path. The others get
`plot_run_metrics` (every metrics.csv column against the step)."""


def plot(
    run: str | os.PathLike | Run, out: str | os.PathLike, metadata: dict[str, str] | None = None
) -> Path:
    """The training curves of a run from its metrics.csv, as its family draws them (a GAN's
    with a guide to reading them); writes `out`."""
    run = Run.of(run)
    if not (run.path / "metrics.csv").is_file():
        raise GenlabError(
            f"{run.path / 'metrics.csv'}: missing; the run has not logged any step yet"
        )
    draw = CURVES.get(run.name, plot_run_metrics)
    return draw(run, out, metadata={"run": str(run), **(metadata or {})})
