"""The training engine: one explicit loop for every model exposing `loss(batch)`, and the
alternating discriminator/generator loop for GANs (`genlab.training.gan`)."""

from __future__ import annotations

from pathlib import Path

from genlab.data import ImageData
from genlab.runs import read_config
from genlab.training.cyclegan import train_cyclegan
from genlab.training.gan import train_gan
from genlab.training.loop import TrainConfig, TrainResult, create_run
from genlab.training.loop import train as train_loop

LOOPS = {"gan": train_gan, "cyclegan": train_cyclegan}
"""Families that need their own loop; every other family trains with `loop.train`."""


def train(
    run_dir: str | Path,
    *,
    max_steps: int | None = None,
    max_minutes: float | None = None,
    stop_at: int | None = None,
    data: ImageData | None = None,
    progress: bool = True,
    cpu: bool = False,
) -> TrainResult:
    """Train (or continue) a run with the loop its family needs; see `loop.train`."""
    loop = LOOPS.get(read_config(run_dir)["family"], train_loop)
    return loop(
        run_dir,
        max_steps=max_steps,
        max_minutes=max_minutes,
        stop_at=stop_at,
        data=data,
        progress=progress,
        cpu=cpu,
    )


__all__ = [
    "LOOPS",
    "TrainConfig",
    "TrainResult",
    "create_run",
    "train",
    "train_cyclegan",
    "train_gan",
]
