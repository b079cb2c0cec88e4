"""How to train, as data and pure functions: `TrainConfig` (stored in config.json), the
learning-rate schedule as a function of progress, and the data order as a function of the step,
which together make the training state of a run its step plus its tensors (exact resume)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch

PRECISIONS = ("auto", "bf16", "fp32", "fp64")
"""TrainConfig.precision's values (the engine resolves them: `engine.resolve_precision`)."""


@dataclass(frozen=True)
class TrainConfig:
    """How to train; stored in config.json. Budgets may be changed on resume."""

    batch_size: int = 128
    """Global batch size (split across processes under DDP)."""
    lr: float = 2e-3
    """Peak learning rate of AdamW."""
    betas: tuple[float, float] = (0.9, 0.999)
    """AdamW's (beta1, beta2)."""
    weight_decay: float = 0.0
    """AdamW's decoupled weight decay."""
    warmup_steps: int = 100
    """Linear warmup from 0 to `lr`."""
    min_lr_ratio: float = 0.05
    """Cosine decay ends at lr * min_lr_ratio."""
    lr_schedule: str = "cosine"
    """"cosine" (warmup then cosine decay over the budget) or "constant" (warmup then flat)."""
    max_steps: int | None = None
    """Total optimisation steps; also the horizon of the LR schedule."""
    max_minutes: float | None = None
    """Wall-clock budget summed over resumes; the LR horizon when max_steps is None."""
    grad_clip: float | None = 1.0
    """Clip the global gradient norm to this value (none: no clipping)."""
    ema_decay: float | None = 0.999
    """Decay of the EMA weights (0 or none: no EMA)."""
    precision: str = "auto"
    """"auto" (bf16 where native, else fp32), "bf16", "fp32", or "fp64" (float64 weights and
    arithmetic, for checking numerics: several times slower)."""
    channels_last: bool = True
    """Keep conv activations in NHWC memory layout (faster convolutions on CPUs and GPUs)."""
    log_every: int = 50
    """Steps between rows of metrics.csv."""
    sample_every: int = 1000
    """Steps between sample grids in RUN/samples/."""
    checkpoint_every: int = 1000
    """Steps between checkpoints (one is always written at the end)."""
    seed: int = 0
    """Seeds the weights, the data order and every random draw: the same seed, the same run."""
    tensorboard: bool = True
    """Also write TensorBoard event files in RUN/tensorboard/ (metrics.csv's rows as scalars,
    the sample grids, eval records as hparams); `genlab board` serves them."""


class TrainResult(NamedTuple):
    """What a call to `train` did."""

    run_dir: Path
    step: int
    stopped_by: str
    """"max_steps", "max_minutes", "interrupt", "stop_at", or the step's own reason ("solved":
    an agent that solved its environment)."""
    elapsed_s: float
    images_per_s: float
    last_metrics: dict[str, float]
    rate_unit: str = "images"
    """What images_per_s counts: "images", or "environment steps" for an agent."""
    detail: str = ""
    """Why the step's own criterion stopped training (empty otherwise)."""


def progress_of(config: TrainConfig, step: int, elapsed: float) -> float:
    """How far training is through its budget: steps when it has max_steps, else wall clock."""
    if config.max_steps is not None:
        return step / config.max_steps
    return elapsed / (60.0 * config.max_minutes)


def lr_at(progress: float, config: TrainConfig, step: int) -> float:
    """Learning rate at a point of training: linear warmup, then cosine decay (pure)."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if config.lr_schedule == "constant":
        return config.lr
    progress = min(max(progress, 0.0), 1.0)
    floor = config.lr * config.min_lr_ratio
    return floor + 0.5 * (config.lr - floor) * (1.0 + math.cos(math.pi * progress))


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The data order of one epoch: a pure function of (seed, epoch), so resume is exact."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


def batch_index(i: int, n: int, batch: int, seed: int) -> torch.Tensor:
    """Indices of the i-th batch of training (all processes together): a pure function of i.

    Batches walk through `epoch_order` epoch after epoch; the last partial batch of an epoch
    is dropped, so every batch has the same size.

    Returns:
        (batch,) int64 indices into the n training images.
    """
    epoch, b = divmod(i, n // batch)
    return epoch_order(n, seed, epoch)[b * batch : (b + 1) * batch]
