"""The CycleGAN training loop (Zhu et al. 2017) on the shared engine of `genlab.training.loop`.

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
   exact with pools too. One process only: pools per process would need their own checkpoints.
4. The learning rate of both optimisers: CycleGANConfig.lr (2e-4), constant, then linearly
   down to 0 from `lr_decay_start` of the budget (`linear_decay`: the paper's 100 + 100
   epochs). It replaces the engine's schedule: TrainConfig's lr, lr_schedule, warmup_steps and
   min_lr_ratio are unused. No EMA and no gradient clipping in `CYCLEGAN_TRAIN` (the paper has
   neither); TrainConfig's ema_decay (EMA of all four networks) and grad_clip turn them on.
5. Sample grids show fixed test images of A and B (the training images where a folder has no
   test split) with their translations and cycles, rows: a, G_ab(a), G_ba(G_ab(a)), b, G_ba(b),
   G_ab(G_ba(b)).

metrics.csv columns: step, epoch, lr, loss_g, gan_ab, gan_ba, cycle, identity (unweighted),
grad_norm_g, loss_d, d_a, d_b (each D's halved loss), grad_norm_d, images_per_s (real images of
both domains read per second), elapsed_s.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, NamedTuple

import torch

from genlab.data import DataSpec, ImageData, load_data
from genlab.errors import GenlabError
from genlab.models.cyclegan import CycleGAN, CycleGANConfig, ImagePool
from genlab.runs import CONFIG, build_model, config_from_dict
from genlab.training.checkpoint import checkpoint_dir, load_checkpoint, restore_rng, save_checkpoint
from genlab.training.loop import (
    METRICS,
    MetricsWriter,
    StopFlag,
    TrainConfig,
    TrainResult,
    batch_index,
    create_run,
    ema_with_warmup,
    make_accelerator,
    non_finite_error,
    prepare_training,
    progress_bar,
    progress_of,
    stop_reason,
    sync_grad_norm,
    truncate_metrics,
)

CYCLEGAN_TRAIN = {
    "lr_schedule": "constant",
    "warmup_steps": 0,
    "grad_clip": None,
    "ema_decay": None,
}
"""TrainConfig fields of a CycleGAN run (the schedule fields only document that the loop's rate
is `linear_decay`'s): no clipping, no EMA."""

B_SEED_OFFSET = 1  # domain B's data order uses seed + 1: otherwise equal sizes pair A_i with B_i
GRID_N = 8  # fixed images of each domain in the sample grids


class Domains(NamedTuple):
    """The two domains' images, one split of each."""

    a: ImageData
    b: ImageData


def linear_decay(progress: float, start: float) -> float:
    """1 until `start`, then linearly down to 0 at progress 1 (Zhu et al. 2017, sec. 4)."""
    if progress <= start or start >= 1.0:
        return 1.0
    return max(0.0, (1.0 - progress) / (1.0 - start))


def domain_label(spec: DataSpec) -> str:
    """A short name for a domain: its classes, else its folder's name."""
    if spec.classes:
        return "+".join(spec.classes)
    return Path(spec.path).name if spec.name == "folder" and spec.path else spec.name


def load_domains(spec_a: DataSpec, spec_b: DataSpec, split: str = "train") -> Domains:
    """Load one split of both domains and check they can be translated into each other.

    Raises:
        GenlabError: a domain is empty, both are the same images, or their shapes differ.
    """
    a, b = load_data(spec_a, split), load_data(spec_b, split)
    for name, spec, data in (("A", spec_a, a), ("B", spec_b, b)):
        if len(data) == 0:
            raise GenlabError(f"domain {name} ({domain_label(spec)}) has no {split} images")
    if a.images.shape == b.images.shape and torch.equal(a.images, b.images):
        raise GenlabError(
            f"domains A and B are the same images ({domain_label(spec_a)}): "
            "choose two different classes or folders"
        )
    if a.shape != b.shape:
        raise GenlabError(
            f"domain A's images are {a.shape} (C, H, W) and B's {b.shape}: give both the same "
            "--size and --channels"
        )
    return Domains(a, b)


def create_cyclegan_run(
    run_dir: str | Path,
    spec_a: DataSpec,
    spec_b: DataSpec,
    model_config: CycleGANConfig | None = None,
    train_config: TrainConfig | None = None,
    *,
    epochs: float | None = None,
) -> Path:
    """Create a CycleGAN run directory for two domains (see `create_run`).

    Args:
        spec_a, spec_b: the domains; stored as "data" and "data_b" in config.json.
        model_config: channels and image_size are taken from the data.
        train_config: default `TrainConfig(**CYCLEGAN_TRAIN)`.
        epochs: a budget in passes over the larger domain (the smaller one with max_steps).

    Raises:
        GenlabError: bad domains (`load_domains`), a model config the images do not fit, or
            no training budget.
    """
    domains = load_domains(spec_a, spec_b, "train")
    tcfg = train_config or TrainConfig(**CYCLEGAN_TRAIN)
    c, h, w = domains.a.shape
    config = dataclasses.replace(model_config or CycleGANConfig(), channels=c, image_size=h)
    with torch.random.fork_rng(devices=[]):  # fail now, not at training, and keep the RNG
        CycleGAN(config)
    if epochs is not None:
        steps = max(1, int(epochs * (max(map(len, domains)) // tcfg.batch_size)))
        max_steps = steps if tcfg.max_steps is None else min(tcfg.max_steps, steps)
        tcfg = dataclasses.replace(tcfg, max_steps=max_steps)
    extra = {
        "data_b": dataclasses.asdict(spec_b),
        "domains": [domain_label(spec_a), domain_label(spec_b)],
    }
    return create_run(run_dir, "cyclegan", config, tcfg, spec_a, extra=extra)


def domain_specs(config: dict[str, Any], source: str = CONFIG) -> tuple[DataSpec, DataSpec]:
    """The DataSpecs of domains A and B in a CycleGAN run's config.json."""
    if "data_b" not in config:
        raise GenlabError(f"{source}: a cyclegan run needs 'data_b' (domain B); it is damaged")
    return (
        config_from_dict(DataSpec, config.get("data", {}), source),
        config_from_dict(DataSpec, config["data_b"], source),
    )


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


def train_cyclegan(
    run_dir: str | Path,
    *,
    max_steps: int | None = None,
    max_minutes: float | None = None,
    stop_at: int | None = None,
    data: Domains | None = None,
    progress: bool = True,
    cpu: bool = False,
) -> TrainResult:
    """Train (or continue training) a CycleGAN run until its budget is spent.

    Args:
        run_dir: a run of family "cyclegan" (`create_cyclegan_run`); with a checkpoint it
            continues exactly where it was.
        max_steps, max_minutes: new budgets (stored in config.json); None keeps the stored ones.
        stop_at: stop after this step as if interrupted (for tests of exact resume).
        data: the training splits of both domains, if already loaded (else loaded from the
            run's data specs).
        progress: show a tqdm progress bar on stderr.
        cpu: force the CPU even where CUDA is available.
    """
    from torch.optim.swa_utils import AveragedModel

    run_dir = Path(run_dir)
    config, tcfg, data_a = prepare_training(
        run_dir, max_steps, max_minutes, data.a if data is not None else None
    )
    spec_a, spec_b = domain_specs(config, str(run_dir / CONFIG))
    data_b = data.b if data is not None else load_data(spec_b, "train")
    if len(data_b) < tcfg.batch_size:
        raise GenlabError(
            f"domain B has {len(data_b)} images, fewer than one batch of {tcfg.batch_size}; "
            "lower --batch-size"
        )
    torch.manual_seed(tcfg.seed)
    model = build_model(config)
    if not isinstance(model, CycleGAN):
        raise GenlabError(f"{run_dir}: a {config['family']!r} run; train_cyclegan trains CycleGANs")
    cfg = model.config
    accelerator = make_accelerator(tcfg.precision, cpu)
    if accelerator.num_processes > 1:
        raise GenlabError("cyclegan trains on one process; run it without `accelerate launch`")
    device = accelerator.device
    memory_format = torch.channels_last if tcfg.channels_last else torch.contiguous_format
    model = model.to(device, memory_format=memory_format)
    g_params = [p for G in model.generators for p in G.parameters()]
    d_params = [p for D in model.discriminators for p in D.parameters()]
    opt = {
        name: torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=tcfg.weight_decay)
        for name, params in (("g", g_params), ("d", d_params))
    }
    ema = None
    if tcfg.ema_decay is not None:
        ema = AveragedModel(model, multi_avg_fn=ema_with_warmup(tcfg.ema_decay), use_buffers=True)
    sampler = ema.module if ema is not None else model
    shape = (cfg.channels, cfg.image_size, cfg.image_size)
    pools = {k: ImagePool(cfg.pool_size, shape, device) for k in ("a", "b")}

    step, elapsed_before = 0, 0.0
    log_sums: dict[str, torch.Tensor] = {}
    log_count = 0
    if checkpoint_dir(run_dir) is not None:
        ckpt = load_checkpoint(run_dir)
        if set(ckpt.optimizers) != {"d", "g"}:
            raise GenlabError(f"{run_dir}: its training state is not a CycleGAN's")
        model.load_state_dict(ckpt.model)
        for name, o in opt.items():
            o.load_state_dict(ckpt.optimizers[name])
        if ema is not None and ckpt.ema is not None:
            ema.module.load_state_dict(ckpt.ema)
            ema.n_averaged.fill_(ckpt.trainer.get("ema_n_averaged", 1))
        for k, pool in pools.items():
            prefix = f"pool_{k}."
            state = {n[len(prefix) :]: t for n, t in ckpt.extra.items() if n.startswith(prefix)}
            if state:
                pool.load_state_dict(state)
        restore_rng(ckpt.rng)
        step, elapsed_before = ckpt.trainer["step"], ckpt.trainer["elapsed_s"]
        log_sums = {k: torch.tensor(v) for k, v in ckpt.trainer.get("log_window", {}).items()}
        log_count = ckpt.trainer.get("log_count", 0)
        truncate_metrics(run_dir / METRICS, step)
    first_step = step

    batch = tcfg.batch_size
    n_a, n_b = len(data_a), len(data_b)
    steps_per_epoch = max(n_a, n_b) // batch
    on_device = device.type == "cuda"
    images_a = data_a.images.to(device) if on_device else data_a.images
    images_b = data_b.images.to(device) if on_device else data_b.images
    fixed = fixed_images(spec_a, spec_b, Domains(data_a, data_b))

    def trainer_state(step: int, elapsed: float) -> dict[str, Any]:
        return {
            "step": step,
            "elapsed_s": elapsed,
            "ema_n_averaged": int(ema.n_averaged.item()) if ema is not None else 0,
            "log_window": {k: float(v) for k, v in log_sums.items()},
            "log_count": log_count,
        }

    def checkpoint(step: int, elapsed: float) -> None:
        extra = {f"pool_{k}.{n}": t for k, p in pools.items() for n, t in p.state_dict().items()}
        ema_weights = ema.module if ema is not None else None
        save_checkpoint(run_dir, model, ema_weights, opt, trainer_state(step, elapsed), extra)

    bar = progress_bar(tcfg.max_steps, step, run_dir.name) if progress else None
    window_start, window_images = time.perf_counter(), 0
    start = time.perf_counter()
    last_metrics: dict[str, float] = {}
    last_saved = step
    stopped_by = "max_steps"
    writer = MetricsWriter(run_dir / METRICS)

    def log_row(step: int, lr: float) -> dict[str, float]:
        """Write the open logging window's means as one metrics.csv row and close it."""
        nonlocal log_sums, log_count, window_start, window_images
        now = time.perf_counter()
        means = {k: float(v) / log_count for k, v in log_sums.items()}
        ips = window_images / max(now - window_start, 1e-9)
        writer.write(
            {
                "step": step,
                "epoch": round(step / steps_per_epoch, 4),
                "lr": lr,
                **means,
                "images_per_s": round(ips, 1),
                "elapsed_s": round(elapsed_before + now - start, 2),
            }
        )
        if bar is not None:
            bar.set_postfix(
                g=f"{means['loss_g']:.3g}",
                d=f"{means['loss_d']:.3g}",
                cycle=f"{means['cycle']:.3g}",
                img_s=f"{ips:.0f}",
            )
        log_sums, log_count, window_start, window_images = {}, 0, now, 0
        return means

    def add(logs: dict[str, torch.Tensor]) -> None:
        for key, value in logs.items():
            log_sums[key] = log_sums.get(key, 0.0) + value.detach().float()

    def real_batch(images: torch.Tensor, n: int, seed: int) -> torch.Tensor:
        x = images[batch_index(step, n, batch, seed)].to(device, non_blocking=True)
        return x.float().div_(255.0).contiguous(memory_format=memory_format)  # (B, C, H, W)

    def guard(loss: torch.Tensor, what: str) -> None:
        if not torch.isfinite(loss.detach()).item():
            lower = "the learning rate (--lr)"
            raise non_finite_error(what, loss.item(), step + 1, run_dir, last_saved, lower)

    lr = 0.0
    with StopFlag() as stop_flag:
        while True:
            elapsed = elapsed_before + time.perf_counter() - start
            reason = stop_reason(tcfg, step, elapsed, stop_at, stop_flag)
            if reason is not None:
                stopped_by = reason
                break
            lr = cfg.lr * linear_decay(progress_of(tcfg, step, elapsed), cfg.lr_decay_start)
            for o in opt.values():
                for group in o.param_groups:
                    group["lr"] = lr
            x_a = real_batch(images_a, n_a, tcfg.seed)
            x_b = real_batch(images_b, n_b, tcfg.seed + B_SEED_OFFSET)

            # 1. Both generators through frozen discriminators (their gradients are not needed).
            for D in model.discriminators:
                D.requires_grad_(False)
            with accelerator.autocast():
                out = model.g_loss(x_a, x_b)
            guard(out.loss, "the generator loss")
            opt["g"].zero_grad(set_to_none=True)
            out.loss.backward()
            for D in model.discriminators:
                D.requires_grad_(True)
            grad_norm_g = sync_grad_norm(g_params, tcfg.grad_clip)
            opt["g"].step()

            # 2. Both discriminators on real images and pooled past translations.
            fake_a = pools["a"].query(out.fake_a.float())
            fake_b = pools["b"].query(out.fake_b.float())
            with accelerator.autocast():
                loss_d, logs_d = model.d_loss(x_a, x_b, fake_a, fake_b)
            guard(loss_d, "the discriminator loss")
            opt["d"].zero_grad(set_to_none=True)
            loss_d.backward()
            grad_norm_d = sync_grad_norm(d_params, tcfg.grad_clip)
            opt["d"].step()
            if ema is not None:
                ema.update_parameters(model)
            add({**out.logs, "grad_norm_g": grad_norm_g, **logs_d, "grad_norm_d": grad_norm_d})
            step += 1

            # 3. Logging, samples, checkpoints.
            log_count += 1
            window_images += 2 * batch
            if step % tcfg.log_every == 0 or step == tcfg.max_steps:
                last_metrics = log_row(step, lr)
            if bar is not None:
                bar.update(1)
            if step % tcfg.sample_every == 0:
                write_translation_grid(sampler, run_dir, step, fixed)
            if step % tcfg.checkpoint_every == 0:
                checkpoint(step, elapsed_before + time.perf_counter() - start)
                last_saved = step

        elapsed = elapsed_before + time.perf_counter() - start
        if stopped_by == "max_minutes" and log_count > 0:  # a time budget ends mid-window
            last_metrics = log_row(step, lr)
        if step != last_saved or checkpoint_dir(run_dir) is None:
            checkpoint(step, elapsed)
        if step > 0:
            write_translation_grid(sampler, run_dir, step, fixed)
    if bar is not None:
        bar.close()
    trained = elapsed - elapsed_before
    images_per_s = 2 * batch * (step - first_step) / trained if trained > 0 else 0.0
    return TrainResult(run_dir, step, stopped_by, elapsed, images_per_s, last_metrics)
