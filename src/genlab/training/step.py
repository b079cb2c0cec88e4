"""The contract between the engine and a family's training step.

A `Step` is built fresh from the engine, the model and its data (typed per step: `ImageData`,
a CycleGAN's `Domains`, an agent's `EnvInfo`), then, when the run resumes, given its saved state
with `load_state_dict`; the engine saves what `state_dict` returns. Every call does one update
and returns the tensors to log. What a step counts (`units`: images, environment steps) names
the rate in the progress bar, metrics.csv and the summary line.

`Engine` is what a step works with besides its model and data: the run, its TrainConfig, the
device, batches and the non-finite guard. The loop (`genlab.training.engine`) owns everything
else: budgets, logging windows, checkpoints, the RNG. `genlab.training.registry.STEPS` says
which step trains which family.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, NamedTuple, TypeVar

import torch
from torch import nn

from genlab.data import Batch, ImageData, Shard, data_size
from genlab.errors import GenlabError
from genlab.runs import checkpoint_dir
from genlab.training.config import batch_index

if TYPE_CHECKING:
    from genlab.runs import Run
    from genlab.training.config import TrainConfig

SAMPLE_SEED_OFFSET = 12345  # sample grids use seed + this, so they are comparable over training

D = TypeVar("D")
"""The data a step trains on."""


class Units(NamedTuple):
    """What one step's rate counts.

    Attributes:
        name: in the summary line ("images/s") and `TrainResult.rate_unit`.
        short: in the progress bar ("img_s").
        column: the metrics.csv column of the rate.
    """

    name: str
    short: str
    column: str


IMAGES = Units("images", "img", "images_per_s")
ENVIRONMENT_STEPS = Units("environment steps", "env", "steps_per_s")


class StepState(NamedTuple):
    """A step's own training state, as `Step.state_dict` gives it and `load_state_dict` takes it
    (the engine adds the step, the clock, the RNG and the logging window).

    Attributes:
        ema: the state dict of `Step.ema_weights()` (written as ema.safetensors), or None.
        optimizer: the state dict of a step's one optimiser (None when it has named ones).
        optimizers: the state dicts of its optimisers by name ({} with one, or none).
        trainer: JSON fields (trainer.json).
        extra: more tensors (optimizer.safetensors' "extra." entries).
    """

    ema: dict[str, torch.Tensor] | None = None
    optimizer: dict[str, Any] | None = None
    optimizers: dict[str, dict[str, Any]] = {}
    trainer: dict[str, Any] = {}
    extra: dict[str, torch.Tensor] = {}


def prefixed(tensors: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries of `tensors` under `prefix` ("target."), the prefix taken off."""
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def with_prefix(tensors: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """`tensors` with `prefix` put before every key: the inverse of `prefixed`."""
    return {f"{prefix}{k}": v for k, v in tensors.items()}


# ------------------------------------------------------------------------------ the engine


def compute_dtype(precision: str) -> torch.dtype:
    """The dtype of the weights and of every tensor a step makes: float64 for "fp64" (checking
    numerics: reordered sums then differ by about 1e-16 relative, not 1e-7), else float32
    (bf16 is autocast's, inside the step)."""
    return torch.float64 if precision == "fp64" else torch.float32


def adamw(params, engine: Engine, **options) -> torch.optim.AdamW:
    """AdamW, fused into one kernel for all parameters on a GPU (a step's optimizer update in
    one launch instead of a few per parameter group); elsewhere torch's default
    implementation, whose results the CPU runs keep bit for bit."""
    return torch.optim.AdamW(params, fused=True if engine.device.type == "cuda" else None,
                             **options)  # fmt: skip


def defers_checks(device: torch.device) -> bool:
    """Whether `Engine.guard` keeps its flags on the device (read once per log window, grid or
    checkpoint) rather than reading them every step: everywhere but on the CPU, where reading
    costs nothing."""
    return device.type != "cpu"


class Engine:
    """One training run in progress: what a step works with besides its model and data.

    Attributes:
        run (the opened run directory), run_dir (its path), config (TrainConfig).
        accelerator, device, memory_format, dtype (of weights and batches);
        shard: this process's rows of every global batch.
        step: steps done; last_saved: the step of the last checkpoint.
    """

    def __init__(self, run: Run, config: TrainConfig, accelerator):
        self.run, self.run_dir, self.config = run, run.path, config
        self.accelerator, self.device = accelerator, accelerator.device
        self.memory_format = (
            torch.channels_last if config.channels_last else torch.contiguous_format
        )
        self.dtype = compute_dtype(config.precision)
        self.shard = Shard(accelerator.process_index, accelerator.num_processes)
        self.main = accelerator.is_main_process
        self.step, self.last_saved = 0, 0
        self._on_device: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.defer_checks = defers_checks(self.device)  # see `guard`
        self._unchecked: dict[str, tuple[torch.Tensor, str]] = {}  # loss -> (all finite, lower)
        self.checked_to = 0  # the step up to which deferred checks were read

    def batch(self, data: ImageData, i: int, seed: int | None = None) -> Batch:
        """This process's rows of the i-th global batch of `data` (order: `seed`, default the
        run's): x (B, C, H, W) in [0, 1] on the device, y (B,) labels, and the shard."""
        if id(data) not in self._on_device:  # the whole set on the device once (uint8)
            self._on_device[id(data)] = (data.images.to(self.device), data.labels.to(self.device))
        images, labels = self._on_device[id(data)]
        seed = self.config.seed if seed is None else seed
        index = batch_index(i, len(data), self.config.batch_size, seed)
        index = index[self.shard.rank :: self.shard.world]
        x = images[index].to(self.device, non_blocking=True).to(self.dtype).div_(255.0)
        y = labels[index].to(self.device, non_blocking=True)
        return Batch(x.contiguous(memory_format=self.memory_format), y, self.shard)

    def guard(self, loss: torch.Tensor, what: str, lower: str) -> None:
        """Stop before the update when `loss` is not finite, keeping the last good checkpoint.
        Under several processes all stop when any one's loss is not finite (none waits).

        On a GPU (`defer_checks`) reading the flag every step would make the host wait for the
        device every step: the flags are kept on the device instead and read by
        `check_finite`, which the loop calls before it logs, draws or saves. A non-finite loss
        then stops training at the next of those, its update never saved."""
        finite = torch.isfinite(loss.detach()).all()
        if self.defer_checks:
            before = self._unchecked.get(what)
            self._unchecked[what] = (finite if before is None else before[0] & finite, lower)
            return
        if not self._everywhere(finite):
            raise GenlabError(
                f"{what} became {loss.item()} at step {self.step + 1}; training stopped and "
                f"{self._kept()} in {self.run_dir}; lower {lower} and resume or retrain"
            )

    def check_finite(self) -> None:
        """Read the loss flags `guard` deferred (one wait for the device); stop as `guard` would
        when one was not finite, naming the steps since the last read."""
        unchecked, self._unchecked = self._unchecked, {}
        first, self.checked_to = self.checked_to + 1, self.step
        for what, (finite, lower) in unchecked.items():
            if not self._everywhere(finite):
                raise GenlabError(
                    f"{what} became non-finite between steps {first} and {self.step}; training "
                    f"stopped and {self._kept()} in {self.run_dir}; lower {lower} and resume or "
                    "retrain"
                )

    def _everywhere(self, finite: torch.Tensor) -> bool:
        """Whether the flag `finite` holds on every process (a collective under several: every
        process calls it at the same point)."""
        if self.shard.world > 1:
            import torch.distributed as dist

            flag = finite.float().reshape(1)
            dist.all_reduce(flag, op=dist.ReduceOp.MIN)
            finite = flag[0] > 0
        return bool(finite.item())

    def _kept(self) -> str:
        if checkpoint_dir(self.run_dir) is not None:
            return f"the last good checkpoint (step {self.last_saved}) is kept"
        return "no checkpoint had been written yet"


# ------------------------------------------------------------------------------ EMA


def ema_with_warmup(decay: float):
    """EMA update for AveragedModel whose decay warms up as min(decay, (1 + n) / (10 + n)).

    A fixed decay of 0.999 would keep 77% of the random initial weights after 263 steps; the
    warmup lets the average follow the model early in training (as in diffusers' EMAModel).
    """

    @torch.no_grad()
    def update(ema_params, params, num_averaged):
        n = float(num_averaged)
        d = min(decay, (1.0 + n) / (10.0 + n))
        floats = [(e, p) for e, p in zip(ema_params, params, strict=True) if e.is_floating_point()]
        if floats:
            torch._foreach_lerp_([e for e, _ in floats], [p for _, p in floats], 1.0 - d)
        for e, p in zip(ema_params, params, strict=True):  # integer buffers (counters): copy
            if not e.is_floating_point():
                e.copy_(p)

    return update


def make_ema(module: nn.Module, decay: float | None):
    """An AveragedModel of `module` with `ema_with_warmup`, or None when decay is None."""
    from torch.optim.swa_utils import AveragedModel

    if decay is None:
        return None
    return AveragedModel(module, multi_avg_fn=ema_with_warmup(decay), use_buffers=True)


def load_ema(ema, state: dict[str, torch.Tensor] | None, trainer: dict[str, Any]) -> None:
    """Put saved EMA weights and count back into an AveragedModel."""
    if ema is not None and state is not None:
        ema.module.load_state_dict(state)
        ema.n_averaged.fill_(trainer.get("ema_n_averaged", 1))


# ------------------------------------------------------------------------------ sample grids


def as_float32(model: nn.Module) -> nn.Module:
    """The model itself, or a float32 copy of an fp64 run's (grids are drawn as `genlab sample`
    draws them, in float32, with `default_dtype(torch.float32)` around)."""
    if any(p.dtype == torch.float64 for p in model.parameters()):
        return copy.deepcopy(model).float()
    return model


def write_samples(
    model: nn.Module,
    run_dir: Path,
    step: int,
    seed: int,
    n: int = 64,
    images: torch.Tensor | None = None,
) -> Path | None:
    """Write a grid of n samples (a fixed seed, so grids over training are comparable).

    Models that reconstruct but do not sample (a VQ-VAE) write the first n/2 of `images`
    (uint8 training images) above their reconstructions, 8 to a row; other models without
    `sample` (classifiers, agents) write nothing.
    """
    from genlab.images import make_grid, save_png

    reconstructs = hasattr(model, "reconstruct") and images is not None
    if not hasattr(model, "sample") and not reconstructs:
        return None
    model = as_float32(model)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    with torch.inference_mode():
        if hasattr(model, "sample"):
            x = model.sample(n, generator=torch.Generator(device=device).manual_seed(seed))
        else:
            real = images[: n // 2].to(device).float() / 255.0  # (n/2, C, H, W)
            recon = model.reconstruct(real)
            rows = [(real[i : i + 8], recon[i : i + 8]) for i in range(0, len(real), 8)]
            x = torch.cat([t for pair in rows for t in pair])  # 8 originals, then their 8
    model.train(was_training)
    path = run_dir / "samples" / f"step_{step:07d}.png"
    meta = {"run": str(run_dir), "step": str(step), "seed": str(seed), "command": "training"}
    nrow = None if hasattr(model, "sample") else 8
    return save_png(path, make_grid(x.float(), nrow=nrow), meta)


# ------------------------------------------------------------------------------ the step


class Step(Generic[D]):
    """One training step of a family, and what the engine asks of it around the loop.

    Subclasses build their optimisers and EMA in `__init__`, do one update in `__call__`, and
    extend `state_dict` / `load_state_dict` with the state they add (`super()` first).

    Attributes:
        engine: the run in progress (config, device, batches, the non-finite guard).
        model: the model being trained, on the engine's device.
        data: what the step trains on.
        lrs: the learning rates of the last update, by metrics.csv column.
        ema: an AveragedModel, where the step keeps one.
    """

    units: ClassVar[Units] = IMAGES
    """What the rate counts (`units_per_step` of them a step)."""
    lower: ClassVar[str] = "the learning rate (--lr)"
    """What to lower when a loss is not finite (for the one-line error)."""

    def __init__(self, engine: Engine, model: nn.Module, data: D):
        self.engine, self.model, self.data = engine, model, data
        self.lrs: dict[str, float] = {}
        self.ema = None

    # ---------------------------------------------------------------- the update

    def __call__(self, step: int, progress: float) -> dict[str, torch.Tensor]:
        """One update at `step` (0-based), `progress` through the budget in [0, 1]; returns the
        detached tensors to log. Sets `self.lrs`."""
        raise NotImplementedError

    @property
    def units_per_step(self) -> int:
        """`units` one step reads, all processes together (images: the global batch)."""
        return self.engine.config.batch_size

    @property
    def epoch_size(self) -> float | None:
        """Steps per pass over the data (the epoch column of metrics.csv); None: no epochs."""
        return data_size(self.data) // self.engine.config.batch_size

    # ---------------------------------------------------------------- state

    def optimizers(self) -> torch.optim.Optimizer | dict[str, torch.optim.Optimizer]:
        """The optimiser, or several by name, as the checkpoint stores them."""
        raise NotImplementedError

    def ema_weights(self) -> nn.Module | None:
        """What ema.safetensors holds (a whole model, so that `genlab.load` can use it)."""
        return None

    @property
    def ema_count(self) -> int:
        """Updates the EMA has averaged (0 without EMA)."""
        return int(self.ema.n_averaged.item()) if self.ema is not None else 0

    def state_dict(self) -> StepState:
        """The step's training state: optimisers, EMA weights and count."""
        opt, ema = self.optimizers(), self.ema_weights()
        named = isinstance(opt, Mapping)
        return StepState(
            ema=ema.state_dict() if ema is not None else None,
            optimizer=None if named else opt.state_dict(),
            optimizers={k: o.state_dict() for k, o in opt.items()} if named else {},
            trainer={"ema_n_averaged": self.ema_count},
        )

    def load_state_dict(self, state: StepState) -> None:
        """Continue from a saved `state_dict` (the model's weights are loaded already)."""
        opt = self.optimizers()
        if isinstance(opt, Mapping) != (state.optimizer is None) or (
            isinstance(opt, Mapping) and set(opt) != set(state.optimizers)
        ):
            raise GenlabError(
                f"{self.engine.run_dir}: its training state does not fit {type(self).__name__} "
                "(another family's state?); train it again"
            )
        if isinstance(opt, Mapping):
            for name, o in opt.items():
                o.load_state_dict(state.optimizers[name])
        else:
            opt.load_state_dict(state.optimizer)
        self.load_ema(state)

    def load_ema(self, state: StepState) -> None:
        """The EMA part of `load_state_dict` (a GAN keeps the generator's only)."""
        load_ema(self.ema, state.ema, state.trainer)

    # ---------------------------------------------------------------- around the loop

    def finished(self) -> tuple[str, str] | None:
        """Whether the step's own criterion ends training before the budget: (the reason for
        TrainResult.stopped_by, a sentence saying why), or None. Checked before every step, so
        a run stopped this way and resumed stops again at once."""
        return None

    def sampler(self) -> nn.Module:
        """The model the sample grids draw from (the EMA one where there is one)."""
        return self.ema_weights() or self.model

    def draw(self, step: int) -> Path | None:
        """The picture of `step` in RUN/samples (main process only): a grid of samples of the
        models that sample, of reconstructions of those that only reconstruct; nothing for
        others (classifiers, agents)."""
        seed = self.engine.config.seed + SAMPLE_SEED_OFFSET
        images = self.data.images if isinstance(self.data, ImageData) else None
        return write_samples(self.sampler(), self.engine.run_dir, step, seed, images=images)

    def columns(self, step: int, window: int, final: bool) -> dict[str, Any]:
        """More metrics.csv columns for the row of `step` closing a window of `window` steps."""
        return {}

    def postfix(self, means: dict[str, float], row: dict[str, Any]) -> dict[str, str]:
        """What the progress bar shows of a logged row."""
        return {"loss": f"{means['loss']:.4g}"} if "loss" in means else {}
