"""Training: one engine (`engine.train`) for every family, calling the family's step
(`steps.OneOptimizer`, `gan.GANStep`, `cyclegan.CycleGANStep`), and run creation from options
(`create.create`)."""

from genlab.training.config import TrainConfig, TrainResult
from genlab.training.create import create, create_run, options_of, read_options
from genlab.training.engine import train

__all__ = [
    "TrainConfig",
    "TrainResult",
    "create",
    "create_run",
    "options_of",
    "read_options",
    "train",
]
