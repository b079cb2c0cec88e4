"""The training engine: one explicit loop for every model exposing `loss(batch)`."""

from genlab.training.loop import TrainConfig, TrainResult, create_run, train

__all__ = ["TrainConfig", "TrainResult", "create_run", "train"]
