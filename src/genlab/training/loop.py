"""One explicit training loop for any model with `loss(batch)`, on Hugging Face accelerate.

accelerate places the model and data on the device, wraps DDP when launched with
`accelerate launch`, and runs the forward pass under bf16 autocast where the hardware has native
bf16 (CUDA, or a CPU with AVX-512-BF16/AMX); elsewhere fp32, because emulated bf16 is far
slower than fp32 (about 30x on an AVX2-only CPU). Everything else is explicit here:

1. the data order is a pure function of (seed, epoch), so the data position is the step;
2. the learning rate is a pure function of progress (`lr_at`): linear warmup, cosine decay;
3. EMA weights with torch's AveragedModel;
4. a non-finite loss stops the run before the update, keeping the last good checkpoint;
5. Ctrl-C stops at the next step boundary and writes a checkpoint; budgets are `max_steps`
   (total steps, deterministic) and `max_minutes` (wall clock, summed over resumes).
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch

import genlab
from genlab.data import DataSpec, ImageData, load_data
from genlab.errors import GenlabError
from genlab.runs import CONFIG, build_model, config_from_dict, read_config, write_json
from genlab.training.checkpoint import checkpoint_dir, load_checkpoint, restore_rng, save_checkpoint

METRICS = "metrics.csv"


@dataclass(frozen=True)
class TrainConfig:
    """How to train; stored in config.json. Budgets may be changed on resume."""

    batch_size: int = 128
    """Global batch size (split across processes under DDP)."""
    lr: float = 2e-3
    """Peak learning rate of AdamW."""
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
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
    """Clip the global gradient norm to this value (None: no clipping)."""
    ema_decay: float | None = 0.999
    """Decay of the EMA weights (None: no EMA)."""
    precision: str = "auto"
    """"auto" (bf16 where native, else fp32), "bf16" or "fp32"."""
    channels_last: bool = True
    """Keep conv activations in NHWC memory layout (faster convolutions on CPUs and GPUs)."""
    log_every: int = 50
    sample_every: int = 1000
    checkpoint_every: int = 1000
    seed: int = 0


class TrainResult(NamedTuple):
    """What a call to `train` did."""

    run_dir: Path
    step: int
    stopped_by: str
    """"max_steps", "max_minutes", "interrupt" or "stop_at"."""
    elapsed_s: float
    images_per_s: float
    last_metrics: dict[str, float]


def bf16_native() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512-BF16 or AMX): only then is it faster."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device_type: str) -> str:
    """accelerate's mixed_precision ("bf16" or "no") for a TrainConfig.precision."""
    if precision not in ("auto", "bf16", "fp32"):
        raise GenlabError(f"unknown precision {precision!r}: use auto, bf16 or fp32")
    if precision == "auto":
        if device_type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "no"
        return "bf16" if device_type == "cpu" and bf16_native() else "no"
    return "bf16" if precision == "bf16" else "no"


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


def prepare_training(
    run_dir: Path, max_steps: int | None, max_minutes: float | None, data: ImageData | None
) -> tuple[dict[str, Any], TrainConfig, ImageData]:
    """Read a run's config, store new budgets in it, load its training data, check one batch fits.

    Returns:
        The config.json dict, the (updated) TrainConfig and the training split.
    """
    config = read_config(run_dir)
    tcfg = config_from_dict(TrainConfig, config.get("train", {}), str(run_dir / CONFIG))
    if max_steps is not None or max_minutes is not None:
        tcfg = dataclasses.replace(
            tcfg,
            max_steps=max_steps if max_steps is not None else tcfg.max_steps,
            max_minutes=max_minutes if max_minutes is not None else tcfg.max_minutes,
        )
        config = {**config, "train": dataclasses.asdict(tcfg)}
        write_json(run_dir / CONFIG, config)
    if tcfg.max_steps is None and tcfg.max_minutes is None:
        raise GenlabError("no training budget: give --max-steps or --max-minutes")
    spec = config_from_dict(DataSpec, config.get("data", {}), str(run_dir / CONFIG))
    data = data if data is not None else load_data(spec, "train")
    if len(data) < tcfg.batch_size:
        raise GenlabError(
            f"the data has {len(data)} images, fewer than one batch of {tcfg.batch_size}; "
            "lower --batch-size"
        )
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


def non_finite_error(
    what: str, value: float, step: int, run_dir: Path, last_saved: int, lower: str
) -> GenlabError:
    """The one-line error for a non-finite loss, saying which checkpoint is kept."""
    where = (
        f"the last good checkpoint (step {last_saved}) is kept"
        if checkpoint_dir(run_dir) is not None
        else "no checkpoint had been written yet"
    )
    return GenlabError(
        f"{what} became {value} at step {step}; training stopped and {where} in {run_dir}; "
        f"lower {lower} and resume or retrain"
    )


def progress_bar(total: int | None, initial: int, desc: str):
    """A tqdm bar over training steps on stderr."""
    from tqdm.auto import tqdm

    return tqdm(
        total=total, initial=initial, unit="step", dynamic_ncols=True, desc=desc, leave=True
    )


def create_run(
    run_dir: str | Path,
    family: str,
    model_config: Any,
    train_config: TrainConfig,
    data_spec: DataSpec,
    *,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Create a run directory with its config.json. Refuses to overwrite an existing run.

    Under `accelerate launch`/torchrun only rank 0 creates it; the other ranks wait for it.
    """
    run_dir = Path(run_dir)
    if int(os.environ.get("RANK", "0")) != 0:
        deadline = time.monotonic() + 120.0
        while not (run_dir / CONFIG).is_file():
            if time.monotonic() > deadline:
                raise GenlabError(f"{run_dir}: rank 0 did not create the run within 120 s")
            time.sleep(0.1)
        return run_dir
    if run_dir.exists() and any(run_dir.iterdir()):
        raise GenlabError(
            f"{run_dir}: already exists and is not empty; continue it with "
            f"`genlab train --resume {run_dir}` or choose another --out"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "family": family,
        "model": dataclasses.asdict(model_config),
        "train": dataclasses.asdict(train_config),
        "data": dataclasses.asdict(data_spec),
        "versions": {"genlab": genlab.__version__, "torch": torch.__version__.split("+")[0]},
        **(extra or {}),
    }
    write_json(run_dir / CONFIG, config)
    return run_dir


class _LossForward(torch.nn.Module):
    """Routes forward() to model.loss(), so DDP sees (and synchronises) the loss computation."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, y: torch.Tensor):
        from genlab.data import Batch

        return self.model.loss(Batch(x, y))


class StopFlag:
    """Turns the first Ctrl-C into a request to stop at the next step boundary."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.getsignal(signal.SIGINT)

            def handler(signum, frame):
                if self.requested:  # second Ctrl-C: abort now, the last checkpoint is kept
                    raise KeyboardInterrupt
                self.requested = True

            signal.signal(signal.SIGINT, handler)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def make_accelerator(precision: str, cpu: bool):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)  # one process may train several models in turn
    device_type = "cpu" if cpu or not torch.cuda.is_available() else "cuda"
    return Accelerator(mixed_precision=resolve_precision(precision, device_type), cpu=cpu)


def truncate_metrics(path: Path, step: int) -> None:
    """Drop rows logged after the checkpoint we resume from (they will be logged again)."""
    if not path.is_file():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    kept = [rows[0]] + [r for r in rows[1:] if r and int(float(r[0])) <= step]
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(kept)


def sync_grad_norm(
    params: list[torch.nn.Parameter], clip: float | None, world: int = 1
) -> torch.Tensor:
    """Average gradients over processes, clip them if asked; returns the norm before clipping."""
    grads = [p.grad for p in params if p.grad is not None]
    if world > 1:
        import torch.distributed as dist

        flat = torch.cat([g.flatten() for g in grads])
        dist.all_reduce(flat)
        flat /= world
        for g, avg in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
            g.copy_(avg.view_as(g))
    if clip is not None:
        return torch.nn.utils.clip_grad_norm_(params, clip)
    return torch.nn.utils.get_total_norm(grads)


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
    """Train (or continue training) the run in `run_dir` until its budget is spent.

    Args:
        run_dir: made by `create_run`; a run with a checkpoint continues exactly where it was.
        max_steps, max_minutes: new budgets (stored in config.json); None keeps the stored ones.
        stop_at: stop after this step as if interrupted (for tests of exact resume).
        data: the training split, if already loaded (else loaded from the run's data spec).
        progress: show a tqdm progress bar on stderr.
        cpu: force the CPU even where CUDA is available.
    """
    from torch.optim.swa_utils import AveragedModel

    run_dir = Path(run_dir)
    config, tcfg, data = prepare_training(run_dir, max_steps, max_minutes, data)

    torch.manual_seed(tcfg.seed)
    model = build_model(config)
    if checkpoint_dir(run_dir) is None and hasattr(model, "load_frozen"):
        model.load_frozen(run_dir)  # parts not trained here (a latent model's VAE, captions)
    accelerator = make_accelerator(tcfg.precision, cpu)
    device = accelerator.device
    memory_format = torch.channels_last if tcfg.channels_last else torch.contiguous_format
    model = model.to(device, memory_format=memory_format)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=tcfg.lr, betas=tcfg.betas, weight_decay=tcfg.weight_decay
    )
    ema = None
    if tcfg.ema_decay is not None:
        ema = AveragedModel(model, multi_avg_fn=ema_with_warmup(tcfg.ema_decay), use_buffers=True)

    step, elapsed_before = 0, 0.0
    log_sums: dict[str, torch.Tensor] = {}
    log_count = 0
    if checkpoint_dir(run_dir) is not None:
        ckpt = load_checkpoint(run_dir)
        model.load_state_dict(ckpt.model)
        optimizer.load_state_dict(ckpt.optimizer)
        if ema is not None and ckpt.ema is not None:
            ema.module.load_state_dict(ckpt.ema)
            ema.n_averaged.fill_(ckpt.trainer.get("ema_n_averaged", 1))
        restore_rng(ckpt.rng)
        step, elapsed_before = ckpt.trainer["step"], ckpt.trainer["elapsed_s"]
        log_sums = {k: torch.tensor(v) for k, v in ckpt.trainer.get("log_window", {}).items()}
        log_count = ckpt.trainer.get("log_count", 0)
        truncate_metrics(run_dir / METRICS, step)
    first_step = step

    wrapped, optimizer = accelerator.prepare(_LossForward(model), optimizer)
    n, batch = len(data), tcfg.batch_size
    steps_per_epoch = n // batch  # drop the last partial batch: every step has the same size
    rank, world = accelerator.process_index, accelerator.num_processes
    images = data.images.to(device) if device.type == "cuda" else data.images
    labels = data.labels.to(device) if device.type == "cuda" else data.labels

    def trainer_state(step: int, elapsed: float) -> dict[str, Any]:
        n_avg = int(ema.n_averaged.item()) if ema is not None else 0
        # The open logging window, so that a resumed run logs the same rows.
        window = {k: float(v) for k, v in log_sums.items()}
        return {
            "step": step,
            "elapsed_s": elapsed,
            "ema_n_averaged": n_avg,
            "log_window": window,
            "log_count": log_count,
        }

    def checkpoint(step: int, elapsed: float) -> None:
        if accelerator.is_main_process:
            save_checkpoint(
                run_dir,
                model,
                ema.module if ema is not None else None,
                optimizer.optimizer if hasattr(optimizer, "optimizer") else optimizer,
                trainer_state(step, elapsed),
            )
        accelerator.wait_for_everyone()

    bar = None
    if progress and accelerator.is_main_process:
        bar = progress_bar(tcfg.max_steps, step, run_dir.name)

    window_start, window_images = time.perf_counter(), 0
    start = time.perf_counter()
    last_metrics: dict[str, float] = {}
    last_saved = step
    stopped_by = "max_steps"
    metrics_writer = MetricsWriter(run_dir / METRICS) if accelerator.is_main_process else None
    sample_generator_seed = tcfg.seed + 12345

    def log_row(step: int, lr: float) -> dict[str, float]:
        """Write the mean of the open logging window as one metrics.csv row and close it."""
        nonlocal log_sums, log_count, window_start, window_images
        now = time.perf_counter()
        means = {k: float(v) / log_count for k, v in log_sums.items()}
        ips = window_images / max(now - window_start, 1e-9)
        row = {
            "step": step,
            "epoch": round(step / steps_per_epoch, 4),
            "lr": lr,
            **means,
            "images_per_s": round(ips, 1),
            "elapsed_s": round(elapsed_before + now - start, 2),
        }
        if metrics_writer is not None:
            metrics_writer.write(row)
        if bar is not None:
            extra = {}
            if tcfg.max_steps is None:  # a time budget: show the time left as the ETA
                left = max(0.0, 60.0 * tcfg.max_minutes - (elapsed_before + now - start))
                extra["left"] = f"{int(left // 60)}:{int(left % 60):02d}"
            bar.set_postfix(loss=f"{means['loss']:.4g}", img_s=f"{ips:.0f}", **extra)
        log_sums, log_count, window_start, window_images = {}, 0, now, 0
        return means

    with StopFlag() as stop_flag:
        while True:
            elapsed = elapsed_before + time.perf_counter() - start
            reason = stop_reason(tcfg, step, elapsed, stop_at, stop_flag)
            if reason is not None:
                stopped_by = reason
                break

            # 1. The batch: a pure function of the step.
            index = batch_index(step, n, batch, tcfg.seed)[rank::world]
            x = images[index].to(device, non_blocking=True).float().div_(255.0)
            x = x.contiguous(memory_format=memory_format)
            y = labels[index].to(device, non_blocking=True)

            # 2. Learning rate, forward, and the non-finite guard before any update.
            lr = lr_at(progress_of(tcfg, step, elapsed), tcfg, step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with accelerator.autocast():
                loss, logs = wrapped(x, y)
            if not torch.isfinite(loss.detach()).item():
                value, lower = loss.item(), "the learning rate (--lr)"
                raise non_finite_error("the loss", value, step + 1, run_dir, last_saved, lower)

            # 3. Backward, clip, step, EMA.
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(loss)
            if tcfg.grad_clip is not None:
                grad_norm = accelerator.clip_grad_norm_(model.parameters(), tcfg.grad_clip)
                logs = {**logs, "grad_norm": grad_norm.detach()}
            optimizer.step()
            if ema is not None:
                ema.update_parameters(model)
            step += 1

            # 4. Logging, samples, checkpoints.
            log_sums["loss"] = log_sums.get("loss", 0.0) + loss.detach().float()
            for key, value in logs.items():
                log_sums[key] = log_sums.get(key, 0.0) + torch.as_tensor(value).detach().float()
            log_count += 1
            window_images += batch
            if step % tcfg.log_every == 0 or step == tcfg.max_steps:
                last_metrics = log_row(step, lr)
            if bar is not None:
                bar.update(1)
            if step % tcfg.sample_every == 0 and accelerator.is_main_process:
                write_samples(
                    ema.module if ema is not None else model, run_dir, step, sample_generator_seed
                )
            if step % tcfg.checkpoint_every == 0:
                checkpoint(step, elapsed_before + time.perf_counter() - start)
                last_saved = step

        elapsed = elapsed_before + time.perf_counter() - start
        if stopped_by == "max_minutes" and log_count > 0:  # a time budget ends mid-window
            last_metrics = log_row(step, lr)
        if step != last_saved or checkpoint_dir(run_dir) is None:
            checkpoint(step, elapsed)
        if accelerator.is_main_process and step > 0:
            write_samples(
                ema.module if ema is not None else model, run_dir, step, sample_generator_seed
            )
    if bar is not None:
        bar.close()
    trained = elapsed - elapsed_before
    images_per_s = batch * (step - first_step) / trained if trained > 0 else 0.0
    return TrainResult(run_dir, step, stopped_by, elapsed, images_per_s, last_metrics)


class MetricsWriter:
    """Appends rows to metrics.csv; the header is fixed by the first row of the file."""

    def __init__(self, path: Path):
        self.path = path
        self.fields: list[str] | None = None
        if path.is_file() and path.stat().st_size > 0:
            with open(path, newline="") as f:
                self.fields = next(csv.reader(f), None)

    def write(self, row: dict[str, Any]) -> None:
        new = self.fields is None
        if new:
            self.fields = list(row)
        with open(self.path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)


def write_samples(
    model: torch.nn.Module, run_dir: Path, step: int, seed: int, n: int = 64
) -> Path | None:
    """Write a grid of n samples (a fixed seed, so grids over training are comparable).

    Models without `sample` (classifiers) write nothing.
    """
    from genlab.images import make_grid, save_png

    if not hasattr(model, "sample"):
        return None

    was_training = model.training
    model.eval()
    with torch.inference_mode():
        x = model.sample(n, generator=torch.Generator(device=_device_of(model)).manual_seed(seed))
    model.train(was_training)
    path = run_dir / "samples" / f"step_{step:07d}.png"
    meta = {"run": str(run_dir), "step": str(step), "seed": str(seed), "command": "training"}
    return save_png(path, make_grid(x.float()), meta)


def _device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device
