"""The CycleGAN training step (Zhu et al. 2017) on the engine of `genlab.training.engine`.

Everything the engine guarantees holds here too (accelerate devices and autocast, a
non-finite guard before every update, Ctrl-C at a step boundary, budgets, atomic pickle-free
checkpoints, exact resume); what differs:

1. Two domains. config.json holds domain A as "data" and domain B as "data_b" (each a
   `DataSpec`, e.g. one Fashion-MNIST class or an image folder) and their labels as "domains".
2. A step reads batch i = step of each domain (`batch_index`), A in the order of `seed`, B in
   the order of `seed + 1`, so the pairs change every epoch and neither order depends on the
   other's size: the data position is a pure function of the step. An epoch (metrics.csv) is a
   pass over the larger domain.
3. One G update (both generators, one Adam optimiser "g") through frozen discriminators, then
   one D update (both discriminators, optimiser "d") on translations drawn from two
   `ImagePool`s of 50 past fakes, as the authors' code does. The pools' content goes into the
   checkpoint (`extra`) and their random draws come from the global RNG it saves, so resume is
   exact with pools too. Under `accelerate launch` every process keeps the same pools: the
   fakes of all processes are gathered in the global batch's order, every process queries
   its pools with the whole batch (the same draws, the RNGs being equal) and keeps its rows.
   So N processes train exactly like one, and the main process's pools are those of all.
4. The learning rate of both optimisers: CycleGANConfig.lr (2e-4), constant, then linearly
   down to 0 from `lr_decay_start` of the budget (`linear_decay`: the paper's 100 + 100
   epochs). It replaces the engine's schedule: TrainConfig's lr, lr_schedule, warmup_steps and
   min_lr_ratio are unused. No EMA and no gradient clipping by default (the paper has
   neither); TrainConfig's ema_decay (EMA of all four networks) and grad_clip turn them on.
5. Sample grids show fixed test images of A and B (the training images where a folder has no
   test split) with their translations and cycles, rows: a, G_ab(a), G_ba(G_ab(a)), b, G_ba(b),
   G_ab(G_ba(b)).

metrics.csv columns: step, epoch, lr, loss_g, gan_ab, gan_ba, cycle, identity (unweighted),
grad_norm_g, loss_d, d_a, d_b (each D's halved loss), grad_norm_d, images_per_s (real images of
both domains read per second), elapsed_s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from genlab.data import DataSpec, ImageData
from genlab.data.domains import Domains, load_domains
from genlab.errors import GenlabError
from genlab.models.cyclegan import CycleGAN, ImagePool
from genlab.training.distributed import global_rows, sync_grad_norm
from genlab.training.step import (
    Engine,
    Step,
    StepState,
    adamw,
    as_float32,
    make_ema,
    prefixed,
    with_prefix,
)

B_SEED_OFFSET = 1  # domain B's data order uses seed + 1: otherwise equal sizes pair A_i with B_i
GRID_N = 8  # fixed images of each domain in the sample grids


def linear_decay(progress: float, start: float) -> float:
    """1 until `start`, then linearly down to 0 at progress 1 (Zhu et al. 2017, sec. 4)."""
    if progress <= start or start >= 1.0:
        return 1.0
    return max(0.0, (1.0 - progress) / (1.0 - start))


def fixed_images(spec_a: DataSpec, spec_b: DataSpec, train: Domains, n: int = GRID_N) -> Domains:
    """The first n test images of each domain; training images where a test split has fewer
    (e.g. a small folder, whose test split is 1 file in 10)."""
    try:
        source = load_domains(spec_a, spec_b, "test")
    except GenlabError:
        source = train
    if min(map(len, source)) < n:
        source = train
    n = min(n, *map(len, source))
    return Domains(*(ImageData(d.images[:n], d.labels[:n], d.class_names) for d in source))


@torch.no_grad()
def translation_grid(model: CycleGAN, x_a: torch.Tensor, x_b: torch.Tensor) -> torch.Tensor:
    """(6 n, C, H, W): rows a, G_ab(a), G_ba(G_ab(a)), b, G_ba(b), G_ab(G_ba(b)), for n images."""
    ab, ba = model.translate(x_a, "ab"), model.translate(x_b, "ba")
    rows = [x_a, ab, model.translate(ab, "ba"), x_b, ba, model.translate(ba, "ab")]
    return torch.cat([r.float() for r in rows])


def write_translation_grid(model: CycleGAN, run_dir: Path, step: int, fixed: Domains) -> Path:
    """samples/step_XXXXXXX.png: `translation_grid` of the fixed images, one row each."""
    from genlab.images import BORDER, make_grid, save_png

    model = as_float32(model)
    device = next(model.parameters()).device
    x_a, x_b = (d.images.to(device).float().div(255.0) for d in fixed)
    was_training = model.training
    model.eval()
    grid = translation_grid(model, x_a, x_b)
    model.train(was_training)
    meta = {
        "run": str(run_dir),
        "step": str(step),
        "command": "training",
        "rows": "a, G_ab(a), G_ba(G_ab(a)), b, G_ba(b), G_ab(G_ba(b))",
        "grid_tile": str(x_a.shape[-1]),
        "grid_padding": str(BORDER),
    }
    return save_png(
        run_dir / "samples" / f"step_{step:07d}.png", make_grid(grid, nrow=len(x_a)), meta
    )


class CycleGANStep(Step[Domains]):
    """One G update of both generators, then one D update of both discriminators."""

    def __init__(self, engine: Engine, model: nn.Module, data: Domains):
        super().__init__(engine, model, data)
        if not isinstance(model, CycleGAN):
            raise GenlabError(f"{engine.run_dir}: not a cyclegan run; CycleGANStep trains those")
        cfg, tcfg = model.config, engine.config
        self.g_params = [p for G in model.generators for p in G.parameters()]
        self.d_params = [p for D in model.discriminators for p in D.parameters()]
        self.opt = {
            name: adamw(params, engine, lr=cfg.lr, betas=cfg.betas, weight_decay=tcfg.weight_decay)
            for name, params in (("g", self.g_params), ("d", self.d_params))
        }
        self.ema = make_ema(model, tcfg.ema_decay)
        shape = (cfg.channels, cfg.image_size, cfg.image_size)
        self.pools = {k: ImagePool(cfg.pool_size, shape, engine.device) for k in ("a", "b")}
        self.fixed: Domains | None = None  # the grid's images, loaded at the first grid

    @property
    def units_per_step(self) -> int:
        return 2 * self.engine.config.batch_size

    def pooled(self, k: str, fakes: torch.Tensor) -> torch.Tensor:
        """This process's rows of the pool's answer to the global batch of fakes."""
        shard = self.engine.shard
        return self.pools[k].query(global_rows(fakes, shard))[shard.rank :: shard.world]

    def __call__(self, step: int, progress: float) -> dict[str, torch.Tensor]:
        engine, model, cfg = self.engine, self.model, self.model.config
        clip, world = engine.config.grad_clip, engine.shard.world
        lr = cfg.lr * linear_decay(progress, cfg.lr_decay_start)
        self.lrs = {"lr": lr}
        for o in self.opt.values():
            for group in o.param_groups:
                group["lr"] = lr
        x_a = engine.batch(self.data.a, step).x
        x_b = engine.batch(self.data.b, step, seed=engine.config.seed + B_SEED_OFFSET).x

        # 1. Both generators through frozen discriminators (their gradients are not needed).
        for D in model.discriminators:
            D.requires_grad_(False)
        with engine.accelerator.autocast():
            out = model.g_loss(x_a, x_b)
        engine.guard(out.loss, "the generator loss", self.lower)
        self.opt["g"].zero_grad(set_to_none=True)
        out.loss.backward()
        for D in model.discriminators:
            D.requires_grad_(True)
        grad_norm_g = sync_grad_norm(self.g_params, clip, world)
        self.opt["g"].step()

        # 2. Both discriminators on real images and pooled past translations.
        dtype = self.engine.dtype  # the pools hold fakes at the weights' precision, not bf16
        fake_a, fake_b = (
            self.pooled("a", out.fake_a.to(dtype)),
            self.pooled("b", out.fake_b.to(dtype)),
        )
        with engine.accelerator.autocast():
            loss_d, logs_d = model.d_loss(x_a, x_b, fake_a, fake_b)
        engine.guard(loss_d, "the discriminator loss", self.lower)
        self.opt["d"].zero_grad(set_to_none=True)
        loss_d.backward()
        grad_norm_d = sync_grad_norm(self.d_params, clip, world)
        self.opt["d"].step()
        if self.ema is not None:
            self.ema.update_parameters(model)
        return {**out.logs, "grad_norm_g": grad_norm_g, **logs_d, "grad_norm_d": grad_norm_d}

    def optimizers(self):
        return self.opt

    def ema_weights(self) -> nn.Module | None:
        return self.ema.module if self.ema is not None else None

    def state_dict(self) -> StepState:
        pools = {k: t for name, p in self.pools.items()
                 for k, t in with_prefix(p.state_dict(), f"pool_{name}.").items()}  # fmt: skip
        return super().state_dict()._replace(extra=pools)

    def load_state_dict(self, state: StepState) -> None:
        super().load_state_dict(state)
        for name, pool in self.pools.items():
            saved = prefixed(state.extra, f"pool_{name}.")
            if saved:
                pool.load_state_dict(saved)

    def draw(self, step: int) -> Path:
        """The translation grid of fixed images of both domains (`write_translation_grid`)."""
        if self.fixed is None:
            specs = self.engine.run.specs()
            if "data_b" not in specs:
                raise GenlabError(
                    f"{self.engine.run.source}: a cyclegan run needs 'data_b' (domain B); "
                    "it is damaged"
                )
            self.fixed = fixed_images(specs["data"], specs["data_b"], self.data)
        return write_translation_grid(self.sampler(), self.engine.run_dir, step, self.fixed)

    def postfix(self, means: dict[str, float], row: dict[str, Any]) -> dict[str, str]:
        return {
            "g": f"{means['loss_g']:.3g}",
            "d": f"{means['loss_d']:.3g}",
            "cycle": f"{means['cycle']:.3g}",
        }
