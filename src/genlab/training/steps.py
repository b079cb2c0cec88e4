"""The training step of every family with one objective, `loss(batch)`: one AdamW optimiser,
linear warmup and cosine decay (`lr_at`), gradient clipping, EMA weights.

Under `accelerate launch` the model is wrapped by DDP (accelerate's `prepare`), which averages
the gradients over processes while the backward pass runs.
"""

from __future__ import annotations

import torch
from torch import nn

from genlab.data import Batch, ImageData, Shard
from genlab.training.config import lr_at
from genlab.training.step import Engine, Step, adamw, make_ema


class _LossForward(nn.Module):
    """Routes forward() to model.loss(), so DDP sees (and synchronises) the loss computation."""

    def __init__(self, model: nn.Module, shard: Shard):
        super().__init__()
        self.model, self.shard = model, shard

    def forward(self, x: torch.Tensor, y: torch.Tensor, progress: float):
        return self.model.loss(Batch(x, y, self.shard, progress))


class OneOptimizer(Step[ImageData]):
    """AdamW on `model.loss(batch)`; metrics: loss, the model's logs, grad_norm (before
    clipping)."""

    def __init__(self, engine: Engine, model: nn.Module, data: ImageData):
        super().__init__(engine, model, data)
        cfg = engine.config
        optimizer = adamw(
            model.parameters(), engine, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay
        )
        self.ema = make_ema(model, cfg.ema_decay)
        self.wrapped, self.optimizer = engine.accelerator.prepare(
            _LossForward(model, engine.shard), optimizer
        )

    def __call__(self, step: int, progress: float) -> dict[str, torch.Tensor]:
        engine, cfg = self.engine, self.engine.config
        # 1. The batch (a pure function of the step) and the learning rate (of the progress).
        batch = engine.batch(self.data, step)
        lr = lr_at(progress, cfg, step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.lrs = {"lr": lr}
        # 2. Forward, and the non-finite guard before any update.
        with engine.accelerator.autocast():
            loss, logs = self.wrapped(batch.x, batch.y, progress)
        engine.guard(loss, "the loss", self.lower)
        # 3. Backward, clip, step, EMA.
        self.optimizer.zero_grad(set_to_none=True)
        engine.accelerator.backward(loss)
        out = {"loss": loss.detach(), **logs}
        if cfg.grad_clip is not None:
            norm = engine.accelerator.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            out["grad_norm"] = norm.detach()
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        return out

    def optimizers(self):
        return getattr(self.optimizer, "optimizer", self.optimizer)

    def ema_weights(self) -> nn.Module | None:
        return self.ema.module if self.ema is not None else None
