"""The training engine: one loop for every family, calling the family's step.

The engine (this module) owns what every run needs; a family's `Step` says only what one step
is: one optimiser on `loss(batch)` (`steps.OneOptimizer`), two players (`gan.GANStep`,
`cyclegan.CycleGANStep`), or later an environment interaction. The engine:

1. reads the run, loads its data, builds the model (and its frozen parts) and the accelerator:
   Hugging Face accelerate places the model and data on the device, sets up the process group
   under `accelerate launch`/torchrun, and runs autocast in bf16 where the hardware has native
   bf16 (CUDA, or a CPU with AVX-512-BF16/AMX), fp32 elsewhere (emulated bf16 is far slower);
2. resumes exactly: weights, optimisers, EMA, RNG states, the open logging window, the step;
3. loops: budget and stop checks (`max_steps`, `max_minutes` summed over resumes, Ctrl-C at
   the next step boundary), the step, a non-finite guard (`guard`) before any update, logging
   windows into metrics.csv and the progress bar, sample grids and checkpoints on schedule;
4. writes a last checkpoint and grid, atomically and without pickle (`checkpoint`).

The data order is a pure function of (seed, step) (`config.batch_index`) and the learning rate a
pure function of progress (`config.lr_at`), so the state to resume is the step plus tensors.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import importlib
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genlab.data import Batch, DataSpec, ImageData, Shard, data_size, require_batches
from genlab.errors import GenlabError
from genlab.families import get_family
from genlab.runs import (
    CONFIG,
    WEIGHTS,
    build_model,
    config_from_dict,
    load_state,
    read_config,
    write_json,
)
from genlab.runtime import StopFlag, bf16_native
from genlab.training.checkpoint import (
    Checkpoint,
    checkpoint_dir,
    finish_interrupted_save,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
)
from genlab.training.config import (
    PRECISIONS,
    TrainConfig,
    TrainResult,
    batch_index,
    progress_of,
)
from genlab.training.create import TRAIN_OPTIONS
from genlab.training.distributed import as_one_process, on_main_process
from genlab.training.lock import lock_run, unlock_run
from genlab.training.metrics import METRICS, MetricsWriter, kept_metrics, truncate_metrics

SAMPLE_SEED_OFFSET = 12345  # sample grids use seed + this, so they are comparable over training


# ------------------------------------------------------------------------------ precision


def resolve_precision(precision: str, device_type: str) -> str:
    """accelerate's mixed_precision ("bf16" or "no") for a TrainConfig.precision ("fp64" trains
    without autocast, in float64: `compute_dtype`)."""
    if precision not in PRECISIONS:
        raise GenlabError(f"unknown precision {precision!r}: use auto, bf16, fp32 or fp64")
    if precision == "auto":
        if device_type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "no"
        return "bf16" if device_type == "cpu" and bf16_native() else "no"
    return "bf16" if precision == "bf16" else "no"


def compute_dtype(precision: str) -> torch.dtype:
    """The dtype of the weights and of every tensor a step makes: float64 for "fp64" (checking
    numerics: reordered sums then differ by about 1e-16 relative, not 1e-7), else float32
    (bf16 is autocast's, inside the step)."""
    return torch.float64 if precision == "fp64" else torch.float32


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype):
    """torch's default dtype set to `dtype` for the duration (fresh noise and buffers a step
    makes follow the weights), restored after."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


def make_accelerator(precision: str, cpu: bool):
    """An accelerate Accelerator for a TrainConfig.precision (on the CPU when `cpu`)."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)  # one process may train several models in turn
    cpu = cpu or not torch.cuda.is_available()  # accelerate sets up gloo only when told "cpu"
    device_type = "cpu" if cpu else "cuda"
    return Accelerator(mixed_precision=resolve_precision(precision, device_type), cpu=cpu)


# ------------------------------------------------------------------------------ loop helpers


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
    """Put a checkpoint's EMA weights and count back into an AveragedModel."""
    if ema is not None and state is not None:
        ema.module.load_state_dict(state)
        ema.n_averaged.fill_(trainer.get("ema_n_averaged", 1))


def progress_bar(total: int | None, initial: int, desc: str):
    """A tqdm bar over training steps on stderr."""
    from tqdm.auto import tqdm

    return tqdm(
        total=total, initial=initial, unit="step", dynamic_ncols=True, desc=desc, leave=True
    )


def as_float32(model: nn.Module) -> nn.Module:
    """The model itself, or a float32 copy of an fp64 run's (grids are drawn as `genlab sample`
    draws them, in float32, with `default_dtype(torch.float32)` around)."""
    if any(p.dtype == torch.float64 for p in model.parameters()):
        return copy.deepcopy(model).float()
    return model


def write_samples(
    model: nn.Module, run_dir: Path, step: int, seed: int, n: int = 64
) -> Path | None:
    """Write a grid of n samples (a fixed seed, so grids over training are comparable).

    Models without `sample` (classifiers) write nothing.
    """
    from genlab.images import make_grid, save_png

    if not hasattr(model, "sample"):
        return None
    model = as_float32(model)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    with torch.inference_mode():
        x = model.sample(n, generator=torch.Generator(device=device).manual_seed(seed))
    model.train(was_training)
    path = run_dir / "samples" / f"step_{step:07d}.png"
    meta = {"run": str(run_dir), "step": str(step), "seed": str(seed), "command": "training"}
    return save_png(path, make_grid(x.float()), meta)


def load_training_data(config: dict[str, Any], source: str):
    """The training data of a run: one image set (ImageData), or what the family's `read` makes
    of its data specs (a CycleGAN's two domains: "data" and "data_b" in config.json)."""
    keys = [k for k in config if k == "data" or k.startswith("data_")]
    family = get_family(config["family"], source)
    spec_type = family.spec_type or DataSpec
    specs = {k: config_from_dict(spec_type, config[k], source) for k in keys}
    specs.setdefault("data", spec_type())
    try:
        return family.read_data(specs, "train")
    except GenlabError as e:  # say where the data spec came from
        raise GenlabError(f"{source}: {e}") from None
    except KeyError as e:  # a spec the family reads is not there
        raise GenlabError(f"{source}: has no {e} entry; the run directory is damaged") from None


# ------------------------------------------------------------------------------ the step


class Step:
    """One training step of a family, and what the engine asks of it around the loop.

    Subclasses build their optimisers and EMA in `__init__` (restoring them from `ckpt` when
    the run resumes), do one update in `__call__`, and say what to log, sample and save.
    """

    lower = "the learning rate (--lr)"
    """What to lower when a loss is not finite (for the one-line error)."""
    rate_unit = "images"
    """What `images_per_step` counts (the unit of the rate in the summary line)."""
    rate_column = "images_per_s"
    """The metrics.csv column of that rate."""

    def __init__(self, engine: Engine, model: nn.Module, ckpt: Checkpoint | None):
        self.engine, self.model = engine, model
        self.lrs: dict[str, float] = {}
        self.ema = None  # an AveragedModel, where the step keeps one

    @property
    def ema_count(self) -> int:
        """Updates the EMA has averaged (0 without EMA)."""
        return int(self.ema.n_averaged.item()) if self.ema is not None else 0

    @property
    def images_per_step(self) -> int:
        """Real images one step reads, all processes together (for images/s)."""
        return self.engine.config.batch_size

    @property
    def steps_per_epoch(self) -> float:
        """Steps per pass over the data (for the epoch column of metrics.csv)."""
        return data_size(self.engine.data) // self.engine.config.batch_size

    def __call__(self, step: int, progress: float) -> dict[str, torch.Tensor]:
        """One update at `step` (0-based), `progress` through the budget in [0, 1]; returns the
        detached tensors to log. Sets `self.lrs`."""
        raise NotImplementedError

    def optimizers(self):
        """The optimiser, or several by name, as the checkpoint stores them."""
        raise NotImplementedError

    def ema_weights(self) -> nn.Module | None:
        """What ema.safetensors holds (a whole model, so that `genlab.load` can use it)."""
        return None

    def sampler(self) -> nn.Module:
        """The model the sample grids draw from (the EMA one where there is one)."""
        return self.ema_weights() or self.model

    def extra_state(self) -> dict[str, torch.Tensor]:
        """More training-state tensors for exact resume (a CycleGAN's image pools)."""
        return {}

    def trainer_state(self) -> dict[str, Any]:
        """More JSON fields of trainer.json."""
        return {}

    def write_samples(self, step: int) -> None:
        """The sample grid of `step` in RUN/samples (main process only)."""
        seed = self.engine.config.seed + SAMPLE_SEED_OFFSET
        write_samples(self.sampler(), self.engine.run_dir, step, seed)

    def columns(self, step: int, window: int, final: bool) -> dict[str, Any]:
        """More metrics.csv columns for the row of `step` closing a window of `window` steps."""
        return {}

    def postfix(self, means: dict[str, float], row: dict[str, Any]) -> dict[str, str]:
        """What the progress bar shows of a logged row."""
        return {"loss": f"{means['loss']:.4g}"} if "loss" in means else {}


def step_class(path: str) -> type[Step]:
    """The Step class of a family record's "module:Class"."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


# ------------------------------------------------------------------------------ the engine


class Engine:
    """One training run in progress: what a step works with, and the loop that calls it.

    Attributes:
        run_dir, config (TrainConfig), data (ImageData, or a family's own, e.g. Domains).
        accelerator, device, memory_format, dtype (of weights and batches);
        shard: this process's rows of every global batch.
        step: steps done; last_saved: the step of the last checkpoint.
    """

    def __init__(self, run_dir: Path, config: TrainConfig, data, accelerator):
        self.run_dir, self.config, self.data = run_dir, config, data
        self.accelerator, self.device = accelerator, accelerator.device
        self.memory_format = (
            torch.channels_last if config.channels_last else torch.contiguous_format
        )
        self.dtype = compute_dtype(config.precision)
        self.shard = Shard(accelerator.process_index, accelerator.num_processes)
        self.main = accelerator.is_main_process
        self.step, self.last_saved = 0, 0
        self._on_device: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def batch(self, data: ImageData, i: int, seed: int | None = None) -> Batch:
        """This process's rows of the i-th global batch of `data` (order: `seed`, default the
        run's): x (B, C, H, W) in [0, 1] on the device, y (B,) labels, and the shard."""
        if id(data) not in self._on_device:  # the whole set on the GPU once; CPU: as it is
            on_gpu = self.device.type == "cuda"
            self._on_device[id(data)] = (
                data.images.to(self.device) if on_gpu else data.images,
                data.labels.to(self.device) if on_gpu else data.labels,
            )
        images, labels = self._on_device[id(data)]
        seed = self.config.seed if seed is None else seed
        index = batch_index(i, len(data), self.config.batch_size, seed)
        index = index[self.shard.rank :: self.shard.world]
        x = images[index].to(self.device, non_blocking=True).to(self.dtype).div_(255.0)
        y = labels[index].to(self.device, non_blocking=True)
        return Batch(x.contiguous(memory_format=self.memory_format), y, self.shard)

    def guard(self, loss: torch.Tensor, what: str, lower: str) -> None:
        """Stop before the update when `loss` is not finite, keeping the last good checkpoint.
        Under several processes all stop when any one's loss is not finite (none waits)."""
        finite = torch.isfinite(loss.detach()).all()
        if self.shard.world > 1:
            import torch.distributed as dist

            flag = finite.float().reshape(1)
            dist.all_reduce(flag, op=dist.ReduceOp.MIN)
            finite = flag[0] > 0
        if finite.item():
            return
        where = (
            f"the last good checkpoint (step {self.last_saved}) is kept"
            if checkpoint_dir(self.run_dir) is not None
            else "no checkpoint had been written yet"
        )
        raise GenlabError(
            f"{what} became {loss.item()} at step {self.step + 1}; training stopped and {where} "
            f"in {self.run_dir}; lower {lower} and resume or retrain"
        )


def _global(sums: dict[str, torch.Tensor], engine: Engine) -> dict[str, torch.Tensor]:
    """Logged sums averaged over the processes: metrics of the global batch, not of one rank's
    rows (the same keys, in the same order, on every process)."""
    if engine.shard.world == 1 or not sums:
        return sums
    import torch.distributed as dist

    values = torch.stack([torch.as_tensor(v, dtype=torch.float32) for v in sums.values()])
    values = values.to(engine.device)
    dist.all_reduce(values)
    return dict(zip(sums, (values / engine.shard.world).cpu(), strict=True))


def prepare_training(
    run_dir: Path, max_steps: int | None, max_minutes: float | None, data
) -> tuple[dict[str, Any], TrainConfig, Any]:
    """Read a run's config, put new budgets in it, load its training data, check one batch fits
    (writing nothing: `build` stores the budgets once the whole run has loaded).

    Returns:
        The config.json dict (with the new budgets), the TrainConfig and the training data.
    """
    config = read_config(run_dir)
    source = str(run_dir / CONFIG)
    if not isinstance(config.get("train"), dict):
        raise GenlabError(f"{source}: has no 'train' entry; the run directory is damaged")
    tcfg = config_from_dict(TrainConfig, config["train"], source)
    for option in TRAIN_OPTIONS:  # the stored values pass the command line's checks
        try:
            option.check(getattr(tcfg, option.name))
        except GenlabError as e:
            raise GenlabError(f"{source}: {e}") from None
    if max_steps is not None or max_minutes is not None:
        tcfg = dataclasses.replace(
            tcfg,
            max_steps=max_steps if max_steps is not None else tcfg.max_steps,
            max_minutes=max_minutes if max_minutes is not None else tcfg.max_minutes,
        )
        config = {**config, "train": dataclasses.asdict(tcfg)}
    if tcfg.max_steps is None and tcfg.max_minutes is None:
        raise GenlabError("no training budget: give --max-steps or --max-minutes")
    data = data if data is not None else load_training_data(config, source)
    require_batches(data, tcfg.batch_size)
    return config, tcfg, data


def stop_reason(
    tcfg: TrainConfig, step: int, elapsed: float, stop_at: int | None, stop_flag: StopFlag
) -> str | None:
    """Why training stops before `step + 1` ("max_steps", "max_minutes", ...), or None."""
    if tcfg.max_steps is not None and step >= tcfg.max_steps:
        return "max_steps"
    if tcfg.max_minutes is not None and elapsed >= 60.0 * tcfg.max_minutes:
        return "max_minutes"
    if stop_at is not None and step >= stop_at:
        return "stop_at"
    if stop_flag.requested:
        return "interrupt"
    return None


def train(
    run_dir: str | Path,
    *,
    max_steps: int | None = None,
    max_minutes: float | None = None,
    stop_at: int | None = None,
    data: Any = None,
    progress: bool = True,
    cpu: bool = False,
) -> TrainResult:
    """Train (or continue training) the run in `run_dir` until its budget is spent.

    Args:
        run_dir: made by `genlab.create` (or `create_run`); a run with a checkpoint continues
            exactly where it was.
        max_steps, max_minutes: new budgets (stored in config.json); None keeps the stored ones.
        stop_at: stop after this step as if interrupted (for tests of exact resume).
        data: the training data, if already loaded (else loaded from the run's data spec).
        progress: show a tqdm progress bar on stderr.
        cpu: force the CPU even where CUDA is available.
    """
    run_dir = Path(run_dir)
    lock = on_main_process(lambda: lock_run(run_dir))  # one writer: a second train is refused
    try:
        precision = read_config(run_dir).get("train", {}).get("precision", "auto")
        with default_dtype(compute_dtype(precision)):
            engine, train_step, ckpt = build(run_dir, max_steps, max_minutes, data, cpu)
            return _loop(engine, train_step, ckpt, stop_at, progress)
    finally:
        unlock_run(lock)


def build(
    run_dir: str | Path,
    max_steps: int | None = None,
    max_minutes: float | None = None,
    data: Any = None,
    cpu: bool = False,
) -> tuple[Engine, Step, Checkpoint | None]:
    """The engine, the family's step and the checkpoint (None for a new run) of `train`, ready
    for its loop (`bench/gpu_check.py` counts the FLOPs of one step with them)."""
    run_dir = Path(run_dir)
    config, tcfg, data = prepare_training(run_dir, max_steps, max_minutes, data)
    family = get_family(config["family"], str(run_dir / CONFIG))
    torch.manual_seed(tcfg.seed)
    model = build_model(config, str(run_dir / CONFIG))
    ckpt = load_checkpoint(run_dir) if checkpoint_dir(run_dir) is not None else None
    if ckpt is not None:  # the rows resuming keeps must be the ones logged
        kept_metrics(run_dir / METRICS, ckpt.trainer["step"], ckpt.trainer.get("metrics_sha256"))
    if ckpt is None and hasattr(model, "load_frozen"):
        model.load_frozen(run_dir)  # parts not trained here (a latent model's VAE, captions)
    accelerator = make_accelerator(tcfg.precision, cpu)
    engine = Engine(run_dir, tcfg, data, accelerator)
    if tcfg.batch_size % engine.shard.world:
        raise GenlabError(
            f"--batch-size {tcfg.batch_size} does not split evenly over {engine.shard.world} "
            "processes; choose a multiple"
        )
    model = model.to(engine.device, engine.dtype, memory_format=engine.memory_format)
    as_one_process(model, engine.shard)
    if ckpt is not None:
        load_state(model, ckpt.model, checkpoint_dir(run_dir) / WEIGHTS)
    try:
        train_step = step_class(family.step)(engine, model, ckpt)
    except GenlabError:
        raise
    except ValueError as e:  # a hyper-parameter the optimiser refuses, a state that does not fit
        raise GenlabError(f"{run_dir / CONFIG}: {e}") from None
    if (max_steps, max_minutes) != (None, None) and engine.main:  # all loaded: store the budgets
        write_json(run_dir / CONFIG, config)
    return engine, train_step, ckpt


def _loop(
    engine: Engine, train_step: Step, ckpt: Checkpoint | None, stop_at, progress
) -> TrainResult:
    """The loop of `train`, from a built step (resumed from `ckpt` when given)."""
    tcfg, run_dir = engine.config, engine.run_dir
    elapsed_before = 0.0
    log_sums: dict[str, torch.Tensor] = {}
    log_count = 0
    if ckpt is not None:
        restore_rng(ckpt.rng)
        engine.step, elapsed_before = ckpt.trainer["step"], ckpt.trainer["elapsed_s"]
        log_sums = {k: torch.tensor(v) for k, v in ckpt.trainer.get("log_window", {}).items()}
        log_count = ckpt.trainer.get("log_count", 0)
    if engine.main:  # rows after the checkpoint (all, without one) will be logged again
        digest = ckpt.trainer.get("metrics_sha256") if ckpt is not None else None
        truncate_metrics(run_dir / METRICS, engine.step, digest)
        finish_interrupted_save(run_dir)
    engine.last_saved = first_step = engine.step

    def checkpoint(step: int, elapsed: float) -> None:
        if engine.main:
            s = train_step
            trainer = {
                "step": step,
                "elapsed_s": elapsed,
                "ema_n_averaged": s.ema_count,
                "log_window": {k: float(v) for k, v in log_sums.items()},
                "log_count": log_count,
                "metrics_sha256": writer.digest(),
                **s.trainer_state(),
            }
            save_checkpoint(
                run_dir, s.model, s.ema_weights(), s.optimizers(), trainer, s.extra_state()
            )
        engine.accelerator.wait_for_everyone()

    def grid(step: int) -> None:
        with default_dtype(torch.float32):  # an fp64 run's grids too (`as_float32`)
            train_step.write_samples(step)

    bar = None
    if progress and engine.main:
        bar = progress_bar(tcfg.max_steps, engine.step, run_dir.name)
    window_start, window_images = time.perf_counter(), 0
    start = time.perf_counter()
    last_metrics: dict[str, float] = {}
    writer = MetricsWriter(run_dir / METRICS) if engine.main else None

    def log_row(at: int, final: bool) -> dict[str, float]:
        """Write the open logging window's means as one metrics.csv row and close it."""
        nonlocal log_sums, log_count, window_start, window_images
        now = time.perf_counter()
        means = {k: float(v) / log_count for k, v in _global(log_sums, engine).items()}
        ips = window_images / max(now - window_start, 1e-9)
        columns = train_step.columns(at, log_count, final)
        per_epoch = train_step.steps_per_epoch  # inf: no epochs (an agent's environment)
        epoch = {"epoch": round(at / per_epoch, 4)} if per_epoch != float("inf") else {}
        row: dict[str, Any] = {
            "step": at,
            **epoch,
            **train_step.lrs,
            **means,
            **columns,
        }
        row[train_step.rate_column] = round(ips, 1)
        row["elapsed_s"] = round(elapsed_before + now - start, 2)
        if writer is not None:
            writer.write(row)
        if bar is not None:
            post = {**train_step.postfix(means, row), "img_s": f"{ips:.0f}"}
            if tcfg.max_steps is None:  # a time budget: show the time left as the ETA
                left = max(0.0, 60.0 * tcfg.max_minutes - (elapsed_before + now - start))
                post["left"] = f"{int(left // 60)}:{int(left % 60):02d}"
            bar.set_postfix(post)
        log_sums, log_count, window_start, window_images = {}, 0, now, 0
        numbers = {k: float(v) for k, v in columns.items() if isinstance(v, int | float)}
        return {**means, **numbers}

    stopped_by = "max_steps"
    with StopFlag() as stop_flag:
        while True:
            elapsed = elapsed_before + time.perf_counter() - start
            reason = stop_reason(tcfg, engine.step, elapsed, stop_at, stop_flag)
            if reason is not None:
                stopped_by = reason
                break
            logs = train_step(engine.step, progress_of(tcfg, engine.step, elapsed))
            engine.step += 1
            for key, value in logs.items():
                log_sums[key] = log_sums.get(key, 0.0) + torch.as_tensor(value).detach().float()
            log_count += 1
            window_images += train_step.images_per_step
            at = engine.step
            if at % tcfg.log_every == 0 or at == tcfg.max_steps:
                last_metrics = log_row(at, final=at == tcfg.max_steps)
            if bar is not None:
                bar.update(1)
            if at % tcfg.sample_every == 0 and engine.main:
                grid(at)
            if at % tcfg.checkpoint_every == 0:
                checkpoint(at, elapsed_before + time.perf_counter() - start)
                engine.last_saved = at

        elapsed = elapsed_before + time.perf_counter() - start
        if stopped_by == "max_minutes" and log_count > 0:  # a time budget ends mid-window
            last_metrics = log_row(engine.step, final=True)
        if engine.step != engine.last_saved or checkpoint_dir(run_dir) is None:
            checkpoint(engine.step, elapsed)
        if engine.main and engine.step > 0:
            grid(engine.step)
    if bar is not None:
        bar.close()
    trained = elapsed - elapsed_before
    steps = engine.step - first_step
    images_per_s = train_step.images_per_step * steps / trained if trained > 0 else 0.0
    return TrainResult(run_dir, engine.step, stopped_by, elapsed, images_per_s, last_metrics,
                       train_step.rate_unit)  # fmt: skip
