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
import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import torch

from genlab.data import require_batches
from genlab.errors import GenlabError
from genlab.runs import CONFIG, WEIGHTS, Run, load_state, write_json
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
    progress_of,
)
from genlab.training.create import TRAIN_OPTIONS
from genlab.training.distributed import as_one_process, on_main_process
from genlab.training.lock import lock_run, unlock_run
from genlab.training.metrics import METRICS, MetricsWriter, kept_metrics, truncate_metrics
from genlab.training.registry import step_of
from genlab.training.step import Engine, Step, StepState, compute_dtype

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


def make_accelerator(precision: str, device: str | None = None):
    """An accelerate Accelerator for a TrainConfig.precision on `device` (`genlab.devices`:
    None is the caller's default, auto unless a `using` block says otherwise). Under several
    processes accelerate gives each the GPU of its local rank (a device index is not used)."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    from genlab.devices import resolve

    target = resolve(device)
    AcceleratorState._reset_state(True)  # one process may train several models in turn
    if target.type == "cuda" and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        torch.cuda.set_device(target)  # accelerate trains on the current CUDA device
    cpu = target.type == "cpu"  # accelerate sets up gloo only when told "cpu"
    return Accelerator(mixed_precision=resolve_precision(precision, target.type), cpu=cpu)


# ------------------------------------------------------------------------------ loop helpers


def progress_bar(total: int | None, initial: int, desc: str):
    """A tqdm bar over training steps on stderr."""
    from tqdm.auto import tqdm

    return tqdm(
        total=total, initial=initial, unit="step", dynamic_ncols=True, desc=desc, leave=True
    )


# ------------------------------------------------------------------------------ the engine


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


def with_budgets(run: Run, max_steps: int | None, max_minutes: float | None) -> Run:
    """The run with its training config checked and new budgets put in (not yet stored:
    `build` writes them once the whole run has loaded)."""
    tcfg = run.train_config
    for option in TRAIN_OPTIONS:  # the stored values pass the command line's checks
        try:
            option.check(getattr(tcfg, option.name))
        except GenlabError as e:
            raise GenlabError(f"{run.source}: {e}") from None
    if max_steps is not None or max_minutes is not None:
        tcfg = dataclasses.replace(
            tcfg,
            max_steps=max_steps if max_steps is not None else tcfg.max_steps,
            max_minutes=max_minutes if max_minutes is not None else tcfg.max_minutes,
        )
        run = run.with_config({**run.config, "train": dataclasses.asdict(tcfg)})
    if tcfg.max_steps is None and tcfg.max_minutes is None:
        raise GenlabError("no training budget: give --max-steps or --max-minutes")
    return run


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
    run_dir: str | Path | Run,
    *,
    max_steps: int | None = None,
    max_minutes: float | None = None,
    stop_at: int | None = None,
    data: Any = None,
    progress: bool = True,
    device: str | None = None,
) -> TrainResult:
    """Train (or continue training) the run in `run_dir` until its budget is spent.

    Args:
        run_dir: made by `genlab.create` (or `create_run`); a run with a checkpoint continues
            exactly where it was.
        max_steps, max_minutes: new budgets (stored in config.json); None keeps the stored ones.
        stop_at: stop after this step as if interrupted (for tests of exact resume).
        data: the training data, if already loaded (else loaded from the run's data spec).
        progress: show a tqdm progress bar on stderr.
        device: auto (a CUDA GPU where there is one, else MPS, else the CPU), cpu, cuda,
            cuda:N or mps (`genlab.devices`; None: the default of an enclosing `using`, else
            auto). A run may resume on another device: trainer.json lists where it trained.
    """
    run_dir = Path(run_dir)
    lock = on_main_process(lambda: lock_run(run_dir))  # one writer: a second train is refused
    try:
        run = Run.open(run_dir)
        precision = run.config.get("train", {}).get("precision", "auto")
        with default_dtype(compute_dtype(precision)):
            engine, train_step, ckpt = build(run, max_steps, max_minutes, data, device)
            loop = Loop(engine, train_step, ckpt, progress)
            try:
                return loop.run(stop_at)
            finally:
                if loop.board is not None:  # also after an error: what was logged is kept
                    loop.board.close()
    finally:
        unlock_run(lock)


def build(
    run: str | Path | Run,
    max_steps: int | None = None,
    max_minutes: float | None = None,
    data: Any = None,
    device: str | None = None,
) -> tuple[Engine, Step, Checkpoint | None]:
    """The engine, the family's step (its state loaded when the run resumes) and the checkpoint
    (None for a new run) of `train`, ready for its loop (`bench/gpu_check.py` counts the FLOPs
    of one step with them)."""
    run = with_budgets(Run.of(run), max_steps, max_minutes)
    tcfg = run.train_config
    data = data if data is not None else run.data("train")
    require_batches(data, tcfg.batch_size)
    torch.manual_seed(tcfg.seed)
    model = run.build()
    ckpt = load_checkpoint(run.path) if run.checkpoint is not None else None
    if ckpt is not None:  # the rows resuming keeps must be the ones logged
        kept_metrics(run.path / METRICS, ckpt.trainer["step"], ckpt.trainer.get("metrics_sha256"))
    if ckpt is None and hasattr(model, "load_frozen"):
        model.load_frozen(run.path)  # parts not trained here (a latent model's VAE, captions)
    engine = Engine(run, tcfg, make_accelerator(tcfg.precision, device))
    if tcfg.batch_size % engine.shard.world:
        raise GenlabError(
            f"--batch-size {tcfg.batch_size} does not split evenly over {engine.shard.world} "
            "processes; choose a multiple"
        )
    model = model.to(engine.device, engine.dtype, memory_format=engine.memory_format)
    as_one_process(model, engine.shard)
    if ckpt is not None:
        load_state(model, ckpt.model, run.checkpoint / WEIGHTS)
    try:
        train_step = step_of(run.name)(engine, model, data)
        if ckpt is not None:
            train_step.load_state_dict(
                StepState(ckpt.ema, ckpt.optimizer, ckpt.optimizers, ckpt.trainer, ckpt.extra)
            )
    except GenlabError:
        raise
    except ValueError as e:  # a hyper-parameter the optimiser refuses, a state that does not fit
        raise GenlabError(f"{run.source}: {e}") from None
    if (max_steps, max_minutes) != (None, None) and engine.main:  # all loaded: store the budgets
        write_json(run.path / CONFIG, dict(run.config))
    return engine, train_step, ckpt


def where_trained(ckpt: Checkpoint | None, engine: Engine) -> list[dict[str, Any]]:
    """The devices a run trained on, one entry per change: the step it began there, the device
    in words and the number of processes (trainer.json's "devices")."""
    from genlab.devices import describe

    devices = list(ckpt.trainer.get("devices", [])) if ckpt is not None else []
    here = {"device": describe(engine.device), "processes": engine.shard.world}
    if not devices or {k: devices[-1].get(k) for k in here} != here:
        devices.append({"from_step": engine.step, **here})
    return devices


class Loop:
    """The loop of `train` over a built step: budgets, logging windows, grids, checkpoints."""

    def __init__(self, engine: Engine, step: Step, ckpt: Checkpoint | None, progress: bool):
        self.engine, self.step, self.tcfg = engine, step, engine.config
        self.elapsed_before = 0.0
        self.sums: dict[str, torch.Tensor] = {}  # the open logging window: sums and count
        self.count = 0
        if ckpt is not None:
            restore_rng(ckpt.rng)
            engine.step, self.elapsed_before = ckpt.trainer["step"], ckpt.trainer["elapsed_s"]
            self.sums = {k: torch.tensor(v) for k, v in ckpt.trainer.get("log_window", {}).items()}
            self.count = ckpt.trainer.get("log_count", 0)
        self.devices = where_trained(ckpt, engine)
        if engine.main:  # rows after the checkpoint (all, without one) will be logged again
            digest = ckpt.trainer.get("metrics_sha256") if ckpt is not None else None
            truncate_metrics(engine.run_dir / METRICS, engine.step, digest)
            finish_interrupted_save(engine.run_dir)
        engine.last_saved = self.first_step = engine.checked_to = engine.step
        self.bar = None
        if progress and engine.main:
            self.bar = progress_bar(self.tcfg.max_steps, engine.step, engine.run_dir.name)
        self.window_start, self.window_units = time.perf_counter(), 0
        self.start = time.perf_counter()
        self.writer = MetricsWriter(engine.run_dir / METRICS) if engine.main else None
        self.board = None
        if engine.main and self.tcfg.tensorboard:
            from genlab.training.board import Board

            self.board = Board(engine.run_dir, engine.step)

    def elapsed(self) -> float:
        """Seconds trained, over every resume."""
        return self.elapsed_before + time.perf_counter() - self.start

    def checkpoint(self, at: int, elapsed: float) -> None:
        """The engine's fields and the step's state, written by the main process."""
        engine = self.engine
        engine.check_finite()  # a deferred non-finite loss: never saved
        if self.board is not None:
            self.board.flush()  # the events up to the checkpoint are on disk before it is
        if engine.main:
            state = self.step.state_dict()
            trainer = {
                "step": at,
                "elapsed_s": elapsed,
                "log_window": {k: float(v) for k, v in self.sums.items()},
                "log_count": self.count,
                "metrics_sha256": self.writer.digest(),
                "devices": self.devices,
                **state.trainer,
            }
            optimizer = state.optimizer if state.optimizer is not None else state.optimizers
            save_checkpoint(
                engine.run_dir, self.step.model, state.ema, optimizer, trainer, state.extra
            )
        engine.accelerator.wait_for_everyone()

    def draw(self, at: int) -> None:
        if self.engine.shard.world == 1:  # (the main process alone draws: no collective here)
            self.engine.check_finite()
        with default_dtype(torch.float32):  # an fp64 run's grids too (`as_float32`)
            path = self.step.draw(at)
        if self.board is not None:
            self.board.grid(path, at)

    def log_row(self, at: int, final: bool) -> dict[str, float]:
        """Write the open logging window's means as one metrics.csv row and close it."""
        self.engine.check_finite()
        step, now = self.step, time.perf_counter()
        means = {k: float(v) / self.count for k, v in _global(self.sums, self.engine).items()}
        rate = self.window_units / max(now - self.window_start, 1e-9)
        columns = step.columns(at, self.count, final)
        epoch = {"epoch": round(at / step.epoch_size, 4)} if step.epoch_size is not None else {}
        row: dict[str, Any] = {"step": at, **epoch, **step.lrs, **means, **columns}
        row[step.units.column] = round(rate, 1)
        row["elapsed_s"] = round(self.elapsed_before + now - self.start, 2)
        if self.writer is not None:
            self.writer.write(row)
        if self.board is not None:
            self.board.row(row)
        if self.bar is not None:
            post = {**step.postfix(means, row), f"{step.units.short}_s": f"{rate:.0f}"}
            if self.tcfg.max_steps is None:  # a time budget: show the time left as the ETA
                left = max(
                    0.0, 60.0 * self.tcfg.max_minutes - (self.elapsed_before + now - self.start)
                )
                post["left"] = f"{int(left // 60)}:{int(left % 60):02d}"
            self.bar.set_postfix(post)
        self.sums, self.count, self.window_start, self.window_units = {}, 0, now, 0
        numbers = {k: float(v) for k, v in columns.items() if isinstance(v, int | float)}
        return {**means, **numbers}

    def run(self, stop_at: int | None) -> TrainResult:
        """Steps until a budget, `stop_at` or Ctrl-C stops them; a last checkpoint and grid."""
        engine, tcfg = self.engine, self.tcfg
        last_metrics: dict[str, float] = {}
        stopped_by, detail = "max_steps", ""
        with StopFlag() as stop_flag:
            while True:
                elapsed = self.elapsed()
                reason = stop_reason(tcfg, engine.step, elapsed, stop_at, stop_flag)
                if reason is None and (own := self.step.finished()) is not None:
                    reason, detail = own
                if reason is not None:
                    stopped_by = reason
                    break
                row = self.one_step(progress_of(tcfg, engine.step, elapsed))
                if row is not None:
                    last_metrics = row
            elapsed = self.elapsed()
            if stopped_by not in ("max_steps", "stop_at", "interrupt") and self.count > 0:
                last_metrics = self.log_row(engine.step, final=True)  # ended mid-window
            if engine.step != engine.last_saved or checkpoint_dir(engine.run_dir) is None:
                self.checkpoint(engine.step, elapsed)
            if engine.main and engine.step > 0:
                self.draw(engine.step)
        if self.bar is not None:
            self.bar.close()
        trained = elapsed - self.elapsed_before
        steps = engine.step - self.first_step
        rate = self.step.units_per_step * steps / trained if trained > 0 else 0.0
        return TrainResult(engine.run_dir, engine.step, stopped_by, elapsed, rate, last_metrics,
                           self.step.units.name, detail)  # fmt: skip

    def one_step(self, progress: float) -> dict[str, float] | None:
        """One step, then what falls due after it: a logged row (returned), a grid, a save."""
        engine, tcfg = self.engine, self.tcfg
        logs = self.step(engine.step, progress)
        engine.step += 1
        for key, value in logs.items():
            self.sums[key] = self.sums.get(key, 0.0) + torch.as_tensor(value).detach().float()
        self.count += 1
        self.window_units += self.step.units_per_step
        at, row = engine.step, None
        if at % tcfg.log_every == 0 or at == tcfg.max_steps:
            row = self.log_row(at, final=at == tcfg.max_steps)
        if self.bar is not None:
            self.bar.update(1)
        if at % tcfg.sample_every == 0 and engine.main:
            self.draw(at)
        if at % tcfg.checkpoint_every == 0:
            self.checkpoint(at, self.elapsed())
            engine.last_saved = at
        return row
