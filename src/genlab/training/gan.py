"""The GAN training loop: alternating discriminator and generator updates on the same engine.

Everything `genlab.training.loop` guarantees holds here too (accelerate devices and autocast,
EMA, a non-finite guard before every update, Ctrl-C at a step boundary, budgets, atomic
pickle-free checkpoints, exact resume); what differs:

1. A step is `n_critic` discriminator updates, then one generator update. `max_steps`,
   `stop_at`, the logging/sample/checkpoint intervals and the LR schedule count these steps.
2. Data position: the k-th D update of step s reads training batch i = s * n_critic + k
   (`batch_index`: epoch after epoch of `epoch_order`). The G update reads no images; a
   conditional generator is asked for the labels of the step's last real batch. So the data
   position is a pure function of the step, and the state to resume is the step.
3. Two Adam(W) optimisers with GANConfig's lr_d, lr_g (unequal: TTUR, Heusel et al. 2017) and
   betas. TrainConfig's schedule (`lr_at` with peak 1) scales both rates; `genlab train gan`
   makes it constant without warmup, the GAN norm (TrainConfig.lr itself is unused).
4. EMA of the generator only. ema.safetensors holds a complete GAN: the EMA generator with the
   current discriminator, so `genlab.load` (which prefers EMA weights) gets the EMA generator.
5. bf16 autocast where it is native (`resolve_precision`), except for wgan-gp's D updates:
   the gradient penalty differentiates a gradient norm that must be close to 1, finer than
   bf16's 8-bit mantissa resolves, so those run in fp32.
6. Noise z ~ N(0, I) comes from the global RNG (saved in checkpoints), drawn for the global
   batch, of which each process takes its slice. Under `accelerate launch` the gradients are
   averaged explicitly (no DDP wrapper: G's loss backpropagates through D, whose gradients it
   does not need); BatchNorm statistics stay per process.
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
import time
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from genlab.data import ImageData
from genlab.errors import GenlabError
from genlab.models.gan import GAN
from genlab.runs import build_model
from genlab.training.checkpoint import checkpoint_dir, load_checkpoint, restore_rng, save_checkpoint
from genlab.training.loop import (
    METRICS,
    MetricsWriter,
    StopFlag,
    TrainResult,
    batch_index,
    ema_with_warmup,
    lr_at,
    make_accelerator,
    non_finite_error,
    prepare_training,
    progress_bar,
    progress_of,
    stop_reason,
    sync_grad_norm,
    truncate_metrics,
    write_samples,
)

GAN_TRAIN = {"lr_schedule": "constant", "warmup_steps": 0, "grad_clip": None}
"""TrainConfig fields `genlab train gan` sets: constant rates, no warmup, no clipping."""

LOSS_DEFAULTS: dict[str, dict[str, Any]] = {
    "wgan-gp": {"n_critic": 5, "lr_d": 1e-4, "lr_g": 1e-4, "betas": (0.0, 0.9)},
}
"""GANConfig values a loss is usually trained with (Gulrajani et al. 2017, Algorithm 1);
the CLI applies them unless the user gives the option."""


def gan_options(
    loss: str | None = None,
    n_critic: int | None = None,
    lr_d: float | None = None,
    lr_g: float | None = None,
    spectral_norm: bool = False,
) -> dict[str, Any]:
    """GANConfig values for the CLI's options: given ones win, then the loss' `LOSS_DEFAULTS`.

    Raises:
        GenlabError: an unknown loss or a non-positive n_critic or learning rate.
    """
    from genlab.models.gan import LOSSES

    loss = loss or "ns"
    if loss not in LOSSES:
        raise GenlabError(f"--loss {loss}: unknown; use one of {', '.join(LOSSES)}")
    given = {"n_critic": n_critic, "lr_d": lr_d, "lr_g": lr_g}
    for name, value in given.items():
        if value is not None and value <= 0:
            raise GenlabError(f"--{name.replace('_', '-')} must be positive, got {value}")
    options = {"loss": loss, "spectral_norm": spectral_norm, **LOSS_DEFAULTS.get(loss, {})}
    return {**options, **{k: v for k, v in given.items() if v is not None}}


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
            self.net = load_feature_network(device=str(device))
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


def train_gan(
    run_dir: str | Path,
    *,
    max_steps: int | None = None,
    max_minutes: float | None = None,
    stop_at: int | None = None,
    data: ImageData | None = None,
    progress: bool = True,
    cpu: bool = False,
) -> TrainResult:
    """Train (or continue training) a GAN run until its budget is spent.

    Args:
        run_dir: a run of family "gan" made by `create_run`; with a checkpoint it continues
            exactly where it was.
        max_steps, max_minutes: new budgets (stored in config.json); None keeps the stored ones.
            A step is n_critic D updates and one G update.
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
    if not isinstance(model, GAN):
        raise GenlabError(f"{run_dir}: a {config['family']!r} run; train_gan trains GAN runs")
    gcfg = model.config
    if gcfg.num_classes and (data.labels < 0).any():
        raise GenlabError("a conditional GAN needs labelled data (class sub-folders)")
    accelerator = make_accelerator(tcfg.precision, cpu)
    device = accelerator.device
    memory_format = torch.channels_last if tcfg.channels_last else torch.contiguous_format
    model = model.to(device, memory_format=memory_format)
    G, D = model.generator, model.discriminator
    g_params, d_params = list(G.parameters()), list(D.parameters())
    opt = {
        "d": torch.optim.AdamW(
            d_params, lr=gcfg.lr_d, betas=gcfg.betas, weight_decay=tcfg.weight_decay
        ),
        "g": torch.optim.AdamW(
            g_params, lr=gcfg.lr_g, betas=gcfg.betas, weight_decay=tcfg.weight_decay
        ),
    }
    ema, sampler = None, model
    if tcfg.ema_decay is not None:
        ema = AveragedModel(G, multi_avg_fn=ema_with_warmup(tcfg.ema_decay), use_buffers=True)
        sampler = _ema_gan(model, ema.module)

    step, elapsed_before = 0, 0.0
    log_sums: dict[str, torch.Tensor] = {}
    log_count = 0
    covered_before: list[int] | None = None  # classes the monitor saw at its last check
    if checkpoint_dir(run_dir) is not None:
        ckpt = load_checkpoint(run_dir)
        if set(ckpt.optimizers) != {"d", "g"}:
            raise GenlabError(f"{run_dir}: its training state is not a GAN's (no D/G optimisers)")
        model.load_state_dict(ckpt.model)
        for name, o in opt.items():
            o.load_state_dict(ckpt.optimizers[name])
        if ema is not None and ckpt.ema is not None:
            g_state = {k[10:]: v for k, v in ckpt.ema.items() if k.startswith("generator.")}
            ema.module.load_state_dict(g_state)
            ema.n_averaged.fill_(ckpt.trainer.get("ema_n_averaged", 1))
        restore_rng(ckpt.rng)
        step, elapsed_before = ckpt.trainer["step"], ckpt.trainer["elapsed_s"]
        log_sums = {k: torch.tensor(v) for k, v in ckpt.trainer.get("log_window", {}).items()}
        log_count = ckpt.trainer.get("log_count", 0)
        covered_before = ckpt.trainer.get("monitor_covered")
        truncate_metrics(run_dir / METRICS, step)
    first_step = step

    n, batch, n_critic = len(data), tcfg.batch_size, gcfg.n_critic
    steps_per_epoch = n // batch  # D batches per epoch
    rank, world = accelerator.process_index, accelerator.num_processes
    images = data.images.to(device) if device.type == "cuda" else data.images
    labels = data.labels.to(device) if device.type == "cuda" else data.labels
    unit = dataclasses.replace(tcfg, lr=1.0)  # lr_at of this is the schedule's factor
    d_autocast = nullcontext if gcfg.loss == "wgan-gp" else accelerator.autocast
    monitor = None
    if accelerator.is_main_process and monitor_applies(data):
        monitor = CollapseMonitor(device, tcfg.seed + 54321)

    def trainer_state(step: int, elapsed: float) -> dict[str, Any]:
        return {
            "step": step,
            "elapsed_s": elapsed,
            "ema_n_averaged": int(ema.n_averaged.item()) if ema is not None else 0,
            "log_window": {k: float(v) for k, v in log_sums.items()},
            "log_count": log_count,
            "monitor_covered": covered_before,
        }

    def checkpoint(step: int, elapsed: float) -> None:
        if accelerator.is_main_process:
            ema_weights = sampler if ema is not None else None
            save_checkpoint(run_dir, model, ema_weights, opt, trainer_state(step, elapsed))
        accelerator.wait_for_everyone()

    bar = None
    if progress and accelerator.is_main_process:
        bar = progress_bar(tcfg.max_steps, step, run_dir.name)
    window_start, window_images = time.perf_counter(), 0
    start = time.perf_counter()
    last_metrics: dict[str, float] = {}
    last_saved = step
    stopped_by = "max_steps"
    writer = MetricsWriter(run_dir / METRICS) if accelerator.is_main_process else None
    sample_seed = tcfg.seed + 12345

    def check_modes(step: int) -> dict[str, Any]:
        """Run the collapse monitor; warn when classes seen at the previous check vanished."""
        nonlocal covered_before
        coverage = monitor(sampler)
        missing = [data.class_names[i] for i in coverage.missing]
        covered = [i for i in range(coverage.total) if i not in coverage.missing]
        vanished = sorted(set(covered_before or ()) - set(covered))
        if vanished:
            names = ", ".join(data.class_names[i] for i in vanished)
            warnings.warn(
                f"{run_dir}: step {step}: the samples no longer show {names} "
                f"({coverage.covered}/{coverage.total} classes covered): mode collapse?",
                ModeCollapseWarning,
                stacklevel=3,
            )
        covered_before = covered
        return {"modes_covered": coverage.covered, "missing_classes": ";".join(missing)}

    def log_row(step: int, lr_d: float, lr_g: float, final: bool) -> dict[str, float]:
        """Write the open logging window's means as one metrics.csv row and close it."""
        nonlocal log_sums, log_count, window_start, window_images
        now = time.perf_counter()
        means = {k: float(v) / log_count for k, v in log_sums.items()}
        ips = window_images / max(now - window_start, 1e-9)
        row: dict[str, Any] = {
            "step": step,
            "epoch": round(step * n_critic / steps_per_epoch, 4),
            "lr_d": lr_d,
            "lr_g": lr_g,
            **means,
        }
        if monitor is not None:
            due = step // tcfg.sample_every > (step - log_count) // tcfg.sample_every
            row.update(
                check_modes(step) if due or final else {"modes_covered": "", "missing_classes": ""}
            )
        row.update(images_per_s=round(ips, 1), elapsed_s=round(elapsed_before + now - start, 2))
        if writer is not None:
            writer.write(row)
        if bar is not None:
            post = {
                "d": f"{means['loss_d']:.3g}",
                "g": f"{means['loss_g']:.3g}",
                "D(x)": f"{means['d_real']:.2f}",
                "D(G(z))": f"{means['d_fake']:.2f}",
                "img_s": f"{ips:.0f}",
            }
            if row.get("modes_covered", "") != "":
                post["modes"] = f"{row['modes_covered']}/{len(data.class_names)}"
                if row["missing_classes"]:
                    post["modes"] += " COLLAPSE?"
            bar.set_postfix(post)
        log_sums, log_count, window_start, window_images = {}, 0, now, 0
        if row.get("modes_covered", "") != "":
            means["modes_covered"] = float(row["modes_covered"])
        return means

    def add(logs: dict[str, torch.Tensor], weight: float = 1.0) -> None:
        for key, value in logs.items():
            log_sums[key] = log_sums.get(key, 0.0) + weight * value.detach().float()

    def real_batch(i: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        index = batch_index(i, n, batch, tcfg.seed)[rank::world]
        x = images[index].to(device, non_blocking=True).float().div_(255.0)
        y = labels[index].to(device, non_blocking=True) if gcfg.num_classes else None
        return x.contiguous(memory_format=memory_format), y

    def noise() -> torch.Tensor:
        return torch.randn(batch, gcfg.latent_dim, device=device)[rank::world]  # (B, latent_dim)

    lr_d = lr_g = 0.0
    with StopFlag() as stop_flag:
        while True:
            elapsed = elapsed_before + time.perf_counter() - start
            reason = stop_reason(tcfg, step, elapsed, stop_at, stop_flag)
            if reason is not None:
                stopped_by = reason
                break
            scale = lr_at(progress_of(tcfg, step, elapsed), unit, step)
            lr_d, lr_g = scale * gcfg.lr_d, scale * gcfg.lr_g
            for o, lr in ((opt["d"], lr_d), (opt["g"], lr_g)):
                for group in o.param_groups:
                    group["lr"] = lr

            # 1. n_critic D updates, each on the next real batch and fresh noise.
            for k in range(n_critic):
                x, y = real_batch(step * n_critic + k)
                with d_autocast():
                    loss_d, logs_d = model.d_loss(x, y, noise())
                if not torch.isfinite(loss_d.detach()).item():
                    lower = "the learning rates (--lr-d, --lr-g)"
                    raise non_finite_error(
                        "the discriminator loss",
                        loss_d.item(),
                        step + 1,
                        run_dir,
                        last_saved,
                        lower,
                    )
                opt["d"].zero_grad(set_to_none=True)
                loss_d.backward()
                grad_norm_d = sync_grad_norm(d_params, tcfg.grad_clip, world)
                opt["d"].step()
                add({**logs_d, "grad_norm_d": grad_norm_d}, 1.0 / n_critic)

            # 2. One G update through a frozen D (its gradients are not needed).
            D.requires_grad_(False)
            with accelerator.autocast():
                loss_g, logs_g = model.g_loss(noise(), y)
            if not torch.isfinite(loss_g.detach()).item():
                lower = "the learning rates (--lr-d, --lr-g)"
                raise non_finite_error(
                    "the generator loss", loss_g.item(), step + 1, run_dir, last_saved, lower
                )
            opt["g"].zero_grad(set_to_none=True)
            loss_g.backward()
            D.requires_grad_(True)
            grad_norm_g = sync_grad_norm(g_params, tcfg.grad_clip, world)
            opt["g"].step()
            if ema is not None:
                ema.update_parameters(G)
            add({**logs_g, "grad_norm_g": grad_norm_g})
            step += 1

            # 3. Logging, samples, checkpoints.
            log_count += 1
            window_images += batch * n_critic
            if step % tcfg.log_every == 0 or step == tcfg.max_steps:
                last_metrics = log_row(step, lr_d, lr_g, final=step == tcfg.max_steps)
            if bar is not None:
                bar.update(1)
            if step % tcfg.sample_every == 0 and accelerator.is_main_process:
                write_samples(sampler, run_dir, step, sample_seed)
            if step % tcfg.checkpoint_every == 0:
                checkpoint(step, elapsed_before + time.perf_counter() - start)
                last_saved = step

        elapsed = elapsed_before + time.perf_counter() - start
        if stopped_by == "max_minutes" and log_count > 0:  # a time budget ends mid-window
            last_metrics = log_row(step, lr_d, lr_g, final=True)
        if step != last_saved or checkpoint_dir(run_dir) is None:
            checkpoint(step, elapsed)
        if accelerator.is_main_process and step > 0:
            write_samples(sampler, run_dir, step, sample_seed)
    if bar is not None:
        bar.close()
    trained = elapsed - elapsed_before
    images_per_s = batch * n_critic * (step - first_step) / trained if trained > 0 else 0.0
    return TrainResult(run_dir, step, stopped_by, elapsed, images_per_s, last_metrics)
