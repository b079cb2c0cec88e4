"""The GAN training step: alternating discriminator and generator updates on the engine.

Everything `genlab.training.engine` guarantees holds here too (accelerate devices and autocast,
EMA, a non-finite guard before every update, Ctrl-C at a step boundary, budgets, atomic
pickle-free checkpoints, exact resume, N processes equal to one); what differs:

1. A step is `n_critic` discriminator updates, then one generator update. `max_steps`,
   `stop_at`, the logging/sample/checkpoint intervals and the LR schedule count these steps.
2. Data position: the k-th D update of step s reads training batch i = s * n_critic + k
   (`batch_index`: epoch after epoch of `epoch_order`). The G update reads no images; a
   conditional generator is asked for the labels of the step's last real batch. So the data
   position is a pure function of the step, and the state to resume is the step.
3. Two Adam(W) optimisers with GANConfig's lr_d, lr_g (unequal: TTUR, Heusel et al. 2017) and
   betas. TrainConfig's schedule (`lr_at` with peak 1) scales both rates; the family's
   defaults make it constant without warmup, the GAN norm (TrainConfig.lr itself is unused).
4. EMA of the generator only. ema.safetensors holds a complete GAN: the EMA generator with the
   current discriminator, so `genlab.load` (which prefers EMA weights) gets the EMA generator.
5. bf16 autocast where it is native (`resolve_precision`), except for wgan-gp's D updates:
   the gradient penalty differentiates a gradient norm that must be close to 1, finer than
   bf16's 8-bit mantissa resolves, so those run in fp32.
6. Noise z ~ N(0, I) (and wgan-gp's interpolation weights) come from the global RNG (saved in
   checkpoints), drawn for the global batch, of which each process takes its rows. Under
   `accelerate launch` the gradients are averaged explicitly (no DDP wrapper: G's loss
   backpropagates through D, whose gradients it does not need), and BatchNorm normalises with
   the global batch's statistics (`distributed.global_batch_norm`).
7. Live mode-collapse monitor (Fashion-MNIST 1x28x28 only): at the first logging row at or
   after every `sample_every` steps, and at the last row, 500 samples of fixed noise are
   classified by the shipped feature network; `modes_covered` and `missing_classes` go to
   metrics.csv, and classes that vanish since the previous check raise a `ModeCollapseWarning`
   and show in the progress bar.

metrics.csv columns: step, epoch, lr_d, lr_g, loss_d, d_real, d_fake, [gp], grad_norm_d (means
over the D updates), loss_g, d_fake_g, grad_norm_g (G update), [modes_covered,
missing_classes], images_per_s (real images read by D per second), elapsed_s. d_real, d_fake
and d_fake_g are mean D(x) = sigmoid(logit) for minimax/ns and raw scores for hinge/wgan-gp.
"""

from __future__ import annotations

import copy
import dataclasses
import warnings
from contextlib import nullcontext
from typing import Any

import torch
from torch import nn

from genlab.data import ImageData
from genlab.errors import GenlabError
from genlab.models.gan import GAN
from genlab.models.stylegan import StyleGAN
from genlab.training.config import lr_at
from genlab.training.distributed import sync_grad_norm
from genlab.training.step import (
    Engine,
    Step,
    StepState,
    adamw,
    load_ema,
    make_ema,
    prefixed,
)

MONITOR_N = 500  # 50 a class: a share of 10% +- 1.3% (std), far above the 2% of a missing one


class ModeCollapseWarning(UserWarning):
    """Classes the generator made at the previous check are missing from its samples now."""


class CollapseMonitor:
    """Classifies a fixed batch of generated Fashion-MNIST images with the shipped classifier.

    Args:
        device: where the generator runs (the classifier runs there too).
        seed: seeds the fixed noise, so every check sees the same z.
        n: samples per check.
    """

    def __init__(self, device: torch.device, seed: int, n: int = MONITOR_N):
        from genlab.evaluation import load_feature_network

        # Imported here, before training starts: genlab.evaluation.metrics imports torchmetrics,
        # which takes seconds.
        from genlab.evaluation.metrics import class_histogram, mode_coverage

        with torch.random.fork_rng(devices=[]):  # building it must not move the global RNG
            self.net = load_feature_network(device=str(device)).float()  # fp64 runs too
        self.device, self.seed, self.n = device, seed, n
        self._histogram, self._coverage = class_histogram, mode_coverage

    def __call__(self, model: GAN):
        """ModeCoverage (covered, total, missing, shares) of the model's samples (eval mode)."""
        was_training = model.training
        model.eval()
        with torch.inference_mode():
            g = torch.Generator(device=self.device).manual_seed(self.seed)
            x = model.sample(self.n, generator=g).float()  # (n, 1, 28, 28) in [0, 1]
            logits = self.net.embed(x).logits  # (n, 10)
        model.train(was_training)
        return self._coverage(self._histogram(logits, logits.shape[1]))


def monitor_applies(data: ImageData) -> bool:
    """The collapse monitor's classifier knows Fashion-MNIST's classes at 1x28x28 only."""
    from genlab.data.fashion_mnist import CLASS_NAMES

    return tuple(data.class_names) == CLASS_NAMES and tuple(data.shape) == (1, 28, 28)


def _ema_gan(model: GAN, generator: torch.nn.Module) -> GAN:
    """A GAN with `generator` (the EMA copy) as G and model's own discriminator as D."""
    view = copy.deepcopy(model)
    view.generator, view.discriminator = generator, model.discriminator
    return view


class GANStep(Step[ImageData]):
    """n_critic D updates, then one G update (see the module docstring)."""

    lower = "the learning rates (--lr-d, --lr-g)"
    model_type: type[nn.Module] = GAN

    def __init__(self, engine: Engine, model: nn.Module, data: ImageData):
        super().__init__(engine, model, data)
        if not isinstance(model, self.model_type):
            kind = self.model_type.__name__
            raise GenlabError(
                f"{engine.run_dir}: not a {kind} run; {type(self).__name__} trains it"
            )
        cfg, tcfg = model.config, engine.config
        if cfg.num_classes and (data.labels < 0).any():
            raise GenlabError("a conditional GAN needs labelled data (class sub-folders)")
        self.g_params = list(model.generator.parameters())
        self.d_params = list(model.discriminator.parameters())
        self.opt = {
            name: adamw(params, engine, lr=lr, betas=cfg.betas, weight_decay=tcfg.weight_decay)
            for name, params, lr in (("d", self.d_params, cfg.lr_d), ("g", self.g_params, cfg.lr_g))
        }
        self.ema = make_ema(model.generator, tcfg.ema_decay)
        self.view = _ema_gan(model, self.ema.module) if self.ema is not None else None
        self.covered_before: list[int] | None = None  # classes the monitor saw at its last check
        self.unit = dataclasses.replace(tcfg, lr=1.0)  # lr_at of this is the schedule's factor
        # wgan-gp's penalty differentiates a gradient norm close to 1, finer than bf16 resolves
        self.d_autocast = nullcontext if cfg.loss == "wgan-gp" else engine.accelerator.autocast
        self.monitor = None
        if engine.main and monitor_applies(data):
            self.monitor = CollapseMonitor(engine.device, tcfg.seed + 54321)

    @property
    def units_per_step(self) -> int:
        return self.engine.config.batch_size * self.model.config.n_critic

    @property
    def epoch_size(self) -> float:
        return super().epoch_size / self.model.config.n_critic

    def noise(self) -> torch.Tensor:
        """z ~ N(0, I): this process's rows of a draw for the global batch, (B, latent_dim)."""
        engine = self.engine
        rows = engine.config.batch_size // engine.shard.world
        return engine.shard.randn((rows, self.model.config.latent_dim), device=engine.device)

    def __call__(self, step: int, progress: float) -> dict[str, torch.Tensor]:
        engine, model, cfg = self.engine, self.model, self.model.config
        clip, world = engine.config.grad_clip, engine.shard.world
        scale = lr_at(progress, self.unit, step)
        self.lrs = {"lr_d": scale * cfg.lr_d, "lr_g": scale * cfg.lr_g}
        for name, lr in (("d", self.lrs["lr_d"]), ("g", self.lrs["lr_g"])):
            for group in self.opt[name].param_groups:
                group["lr"] = lr
        logs: dict[str, torch.Tensor] = {}

        # 1. n_critic D updates, each on the next real batch and fresh noise.
        y = None
        for k in range(cfg.n_critic):
            batch = engine.batch(self.data, step * cfg.n_critic + k)
            y = batch.y if cfg.num_classes else None
            with self.d_autocast():
                loss_d, logs_d = model.d_loss(batch.x, y, self.noise(), engine.shard)
            engine.guard(loss_d, "the discriminator loss", self.lower)
            self.opt["d"].zero_grad(set_to_none=True)
            loss_d.backward()
            grad_norm_d = sync_grad_norm(self.d_params, clip, world)
            self.opt["d"].step()
            for key, value in {**logs_d, "grad_norm_d": grad_norm_d}.items():
                logs[key] = logs.get(key, 0.0) + value.detach().float() * (1.0 / cfg.n_critic)
        logs.update(self.regularize(step, batch))

        # 2. One G update through a frozen D (its gradients are not needed); a conditional G is
        # asked for the labels of the step's last real batch.
        model.discriminator.requires_grad_(False)
        with engine.accelerator.autocast():
            loss_g, logs_g = model.g_loss(self.noise(), y, engine.shard)
        engine.guard(loss_g, "the generator loss", self.lower)
        self.opt["g"].zero_grad(set_to_none=True)
        loss_g.backward()
        model.discriminator.requires_grad_(True)
        grad_norm_g = sync_grad_norm(self.g_params, clip, world)
        self.opt["g"].step()
        if self.ema is not None:
            self.ema.update_parameters(model.generator)
        return {**logs, **logs_g, "grad_norm_g": grad_norm_g}

    def regularize(self, step: int, batch) -> dict[str, torch.Tensor]:
        """A separate D update after the step's D updates (StyleGAN's lazy R1); none here."""
        return {}

    def optimizers(self):
        return self.opt

    def ema_weights(self) -> nn.Module | None:
        return self.view

    def state_dict(self) -> StepState:
        state = super().state_dict()
        return state._replace(trainer={**state.trainer, "monitor_covered": self.covered_before})

    def load_state_dict(self, state: StepState) -> None:
        super().load_state_dict(state)
        self.covered_before = state.trainer.get("monitor_covered")

    def load_ema(self, state: StepState) -> None:
        """ema.safetensors holds a whole GAN (`_ema_gan`); the EMA is of its generator."""
        if state.ema is not None:
            load_ema(self.ema, prefixed(state.ema, "generator."), state.trainer)

    def columns(self, step: int, window: int, final: bool) -> dict[str, Any]:
        """The collapse monitor's columns: at the first row at or after every `sample_every`
        steps and at the last row; empty cells otherwise."""
        if self.monitor is None:
            return {}
        every = self.engine.config.sample_every
        if not (final or step // every > (step - window) // every):
            return {"modes_covered": "", "missing_classes": ""}
        names = self.data.class_names
        coverage = self.monitor(self.sampler())
        missing = [names[i] for i in coverage.missing]
        covered = [i for i in range(coverage.total) if i not in coverage.missing]
        vanished = sorted(set(self.covered_before or ()) - set(covered))
        if vanished:
            warnings.warn(
                f"{self.engine.run_dir}: step {step}: the samples no longer show "
                f"{', '.join(names[i] for i in vanished)} ({coverage.covered}/{coverage.total} "
                "classes covered): mode collapse?",
                ModeCollapseWarning,
                stacklevel=4,
            )
        self.covered_before = covered
        return {"modes_covered": coverage.covered, "missing_classes": ";".join(missing)}

    def postfix(self, means: dict[str, float], row: dict[str, Any]) -> dict[str, str]:
        post = {
            "d": f"{means['loss_d']:.3g}",
            "g": f"{means['loss_g']:.3g}",
            "D(x)": f"{means['d_real']:.2f}",
            "D(G(z))": f"{means['d_fake']:.2f}",
        }
        if row.get("modes_covered", "") != "":
            post["modes"] = f"{row['modes_covered']}/{len(self.data.class_names)}"
            if row["missing_classes"]:
                post["modes"] += " COLLAPSE?"
        return post


class StyleGANStep(GANStep):
    """GANStep for StyleGAN2: the same D and G updates (style mixing, noise and DiffAugment are
    in the model's losses), plus lazy R1: every `r1_every` steps one more D update on
    r1_every * R1 of the step's last real batch (Karras et al. 2020, 3.1), in fp32 because it
    differentiates a gradient. metrics.csv adds r1, the last penalty computed."""

    model_type = StyleGAN

    def __init__(self, engine: Engine, model: nn.Module, data: ImageData):
        super().__init__(engine, model, data)
        self.last_r1 = torch.tensor(0.0, device=engine.device)

    def state_dict(self) -> StepState:
        state = super().state_dict()
        return state._replace(trainer={**state.trainer, "last_r1": float(self.last_r1)})

    def load_state_dict(self, state: StepState) -> None:
        super().load_state_dict(state)
        self.last_r1 = torch.tensor(state.trainer.get("last_r1", 0.0), device=self.engine.device)

    def regularize(self, step: int, batch) -> dict[str, torch.Tensor]:
        cfg = self.model.config
        if cfg.r1_gamma > 0 and step % cfg.r1_every == 0:
            r1 = self.model.r1_loss(batch.x, self.engine.shard)
            self.engine.guard(r1, "the R1 penalty", "--r1-gamma")
            self.opt["d"].zero_grad(set_to_none=True)
            (r1 * cfg.r1_every).backward()
            sync_grad_norm(self.d_params, self.engine.config.grad_clip, self.engine.shard.world)
            self.opt["d"].step()
            self.last_r1 = r1.detach()
        return {"r1": self.last_r1}
