"""Training and sampling speed of genlab's diffusion UNet against diffusers and ddpm-pytorch.

Three noise-prediction networks of about the same size, on 28x28x1 (Fashion-MNIST) in fp32:
- genlab: `UNet(UNetConfig())`, the default of `genlab.models.ddpm.DiffusionConfig` (width 16,
  mults (1, 2, 4), one block per level, attention at 7x7 and in the middle; 0.72 M parameters);
- diffusers 0.42.1: `UNet2DModel` with the same shape: block_out_channels (16, 32, 64), one
  layer per block, attention in the last down/first up block (and its mid block), GroupNorm 8,
  4 heads (0.69 M);
- denoising-diffusion-pytorch 2.3.4: `Unet(dim=16, dim_mults=(1, 2, 4), channels=1)`, the
  README's architecture with dim chosen to match (0.72 M; two blocks per level and linear
  attention at the outer levels, its own design).

Training: images/s of one AdamW step at batch 64 (noise, forward, MSE, backward, step); the
noising and the loss are genlab's `Schedule.training_loss` (cosine, T = 1000, eps target) for all
three, so only the networks differ. Each network is timed in the default (NCHW) layout and in
channels_last; the six contenders run in interleaved rounds (the order rotating each round) so
that machine drift hits all alike, and the median of the rounds is reported, in images per second
of wall time and per second of the process's CPU time (steadier on a shared machine).

Sampling: seconds to draw 64 images by DDIM with 50 steps: genlab's `diffusion.sample` with its
UNet against ddpm-pytorch's `GaussianDiffusion(Unet(dim=16, ...), image_size=28,
timesteps=1000, sampling_timesteps=50, beta_schedule="cosine").sample(batch_size=64)` (its
default objective, pred_v), alternating, median of `--sample-rounds`, each network in the layout
that trained faster. The weights are the random initial ones: the time does not depend on them.

Run in the ddpm benchmark venv (bench/README.md), once per thread count:
    /work/venvs/ddpm/bin/python bench/diffusion_speed.py --threads 2
    OMP_NUM_THREADS=1 /work/venvs/ddpm/bin/python bench/diffusion_speed.py --threads 1
Each run adds its entry ("threads_N") to bench/results/diffusion_speed.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import NamedTuple

import torch
from ddpm_pytorch_baseline import import_ddpm_pytorch  # a sibling script in bench/
from torch import nn

from genlab.data import DataSpec, load_data
from genlab.diffusion import make_schedule, sample
from genlab.models.unet import UNet, UNetConfig

RESULTS = Path(__file__).resolve().parent / "results" / "diffusion_speed.json"
BATCH = 64
LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}


class Contender(NamedTuple):
    name: str  # "model / layout"
    model: str
    layout: str
    step: Callable[[], None]


def build_networks(ddpm) -> dict[str, tuple[nn.Module, Callable]]:
    """name -> (network, eps_fn(net, x_t, t) -> (B, 1, 28, 28)), all seeded alike."""
    from diffusers import UNet2DModel

    torch.manual_seed(0)
    genlab_net = UNet(UNetConfig())
    diffusers_net = UNet2DModel(
        sample_size=28,
        in_channels=1,
        out_channels=1,
        block_out_channels=(16, 32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        norm_num_groups=8,
        attention_head_dim=16,  # 64 channels / 4 heads, as genlab's
    )
    ddpm_net = ddpm.Unet(dim=16, dim_mults=(1, 2, 4), channels=1)
    return {
        "genlab UNet": (genlab_net, lambda net, x_t, t: net(x_t, t)),
        "diffusers UNet2DModel": (diffusers_net, lambda net, x_t, t: net(x_t, t).sample),
        "ddpm-pytorch Unet": (ddpm_net, lambda net, x_t, t: net(x_t, t)),
    }


def make_train_step(net: nn.Module, eps_fn: Callable, x0: torch.Tensor, layout: str):
    """One AdamW step of the eps-MSE on x0 (B, 1, 28, 28) in [-1, 1], in `layout`."""
    net = copy.deepcopy(net).to(memory_format=LAYOUTS[layout]).train()
    x0 = x0.contiguous(memory_format=LAYOUTS[layout])
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    schedule = make_schedule("cosine", 1000)
    g = torch.Generator().manual_seed(0)

    def step() -> None:
        loss = schedule.training_loss(lambda x_t, t, cond: eps_fn(net, x_t, t), x0, generator=g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def time_training(
    contenders: list[Contender], rounds: int, steps: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """(img/s of wall time, img/s of process CPU time) per contender and round; one untimed
    warm-up step each first. On a shared machine the CPU time varies less than the wall time."""
    for c in contenders:
        c.step()
    wall: dict[str, list[float]] = {c.name: [] for c in contenders}
    cpu: dict[str, list[float]] = {c.name: [] for c in contenders}
    for r in range(rounds):
        k = r % len(contenders)
        for c in contenders[k:] + contenders[:k]:
            start, start_cpu = time.perf_counter(), time.process_time()
            for _ in range(steps):
                c.step()
            wall[c.name].append(steps * BATCH / (time.perf_counter() - start))
            cpu[c.name].append(steps * BATCH / (time.process_time() - start_cpu))
        print(f"  round {r + 1}/{rounds} done", flush=True)
    return wall, cpu


def time_sampling(ddpm, nets, layouts: dict[str, str], rounds: int) -> dict[str, list[float]]:
    """Seconds for 64 images by DDIM 50 steps: genlab's sampler vs ddpm-pytorch's, alternating."""
    genlab_net = copy.deepcopy(nets["genlab UNet"][0])
    genlab_net = genlab_net.to(memory_format=LAYOUTS[layouts["genlab UNet"]]).eval()
    ddpm_net = copy.deepcopy(nets["ddpm-pytorch Unet"][0])
    ddpm_net = ddpm_net.to(memory_format=LAYOUTS[layouts["ddpm-pytorch Unet"]])
    diffusion = ddpm.GaussianDiffusion(
        ddpm_net, image_size=28, timesteps=1000, sampling_timesteps=50, beta_schedule="cosine"
    ).eval()
    schedule = make_schedule("cosine", 1000)
    g = torch.Generator().manual_seed(0)

    def genlab_sample() -> None:
        with torch.inference_mode():
            sample(schedule, genlab_net, (BATCH, 1, 28, 28), "ddim", steps=50, generator=g)

    def ddpm_sample() -> None:
        diffusion.sample(batch_size=BATCH)  # DDIM (sampling_timesteps < timesteps), eta 0

    runs = {"genlab diffusion.sample": genlab_sample, "ddpm-pytorch GaussianDiffusion": ddpm_sample}
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(rounds):
        order = list(runs.items()) if r % 2 == 0 else list(runs.items())[::-1]
        for name, fn in order:
            start = time.perf_counter()
            fn()
            seconds[name].append(time.perf_counter() - start)
        print(f"  sampling round {r + 1}/{rounds} done", flush=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved training rounds")
    parser.add_argument("--steps", type=int, default=2, help="timed steps per round")
    parser.add_argument("--sample-rounds", type=int, default=3)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    ddpm, tv_note = import_ddpm_pytorch()
    load_start = os.getloadavg()
    images = load_data(DataSpec("fashion-mnist"), "train").images[:BATCH]
    x0 = images.float().div(127.5).sub(1.0)  # (64, 1, 28, 28) in [-1, 1]

    nets = build_networks(ddpm)
    params = {name: sum(p.numel() for p in net.parameters()) for name, (net, _) in nets.items()}
    for name, n in params.items():
        ratio = n / params["genlab UNet"]
        print(f"{name:24s} {n:>10,} parameters ({ratio:.2f}x genlab's)")
    contenders = [
        Contender(f"{name} / {layout}", name, layout, make_train_step(net, fn, x0, layout))
        for name, (net, fn) in nets.items()
        for layout in LAYOUTS
    ]
    print(f"training, {args.threads} thread(s): {args.rounds} rounds x {args.steps} steps")
    speeds, cpu_speeds = time_training(contenders, args.rounds, args.steps)
    median = {name: statistics.median(v) for name, v in speeds.items()}
    cpu_median = {name: statistics.median(v) for name, v in cpu_speeds.items()}
    best = {
        name: max(LAYOUTS, key=lambda layout, name=name: median[f"{name} / {layout}"])
        for name in nets
    }
    print(f"sampling: 64 images, DDIM 50 steps, {args.sample_rounds} rounds")
    seconds = time_sampling(ddpm, nets, best, args.sample_rounds)
    sample_median = {name: statistics.median(v) for name, v in seconds.items()}
    load_end = os.getloadavg()

    print(f"\ntraining img/s, batch {BATCH}, AdamW, fp32, {args.threads} thread(s), median")
    print("(wall-clock img/s; in brackets, img/s of the process's CPU time)")
    print(f"| model | params | {' | '.join(LAYOUTS)} | faster | vs genlab |")
    print("|---|---|---|---|---|---|")
    for name in nets:
        cells = " | ".join(
            f"{median[f'{name} / {layout}']:.1f} ({cpu_median[f'{name} / {layout}']:.1f})"
            for layout in LAYOUTS
        )
        top = median[f"{name} / {best[name]}"]
        ref = median[f"genlab UNet / {best['genlab UNet']}"]
        print(
            f"| {name} | {params[name] / 1e6:.3f} M | {cells} | {best[name]} | {top / ref:.2f}x |"
        )
    g_s = sample_median["genlab diffusion.sample"]
    d_s = sample_median["ddpm-pytorch GaussianDiffusion"]
    print("\nsampling 64 images, DDIM 50 steps, median seconds")
    print(f"| genlab | ddpm-pytorch | ddpm / genlab |\n|---|---|---|\n| {g_s:.2f} | {d_s:.2f} | "
          f"{d_s / g_s:.2f}x |")  # fmt: skip
    print(f"load average {load_start[0]:.2f} at the start, {load_end[0]:.2f} at the end")

    record = {
        "threads": args.threads,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "rounds": args.rounds,
        "steps_per_round": args.steps,
        "batch": BATCH,
        "load_average_start": load_start,
        "load_average_end": load_end,
        "machine": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "versions": {
            pkg: version(pkg) for pkg in ("torch", "diffusers", "denoising-diffusion-pytorch")
        },
        "torchvision": tv_note,
        "params": params,
        "train_img_per_s": {"median": median, "rounds": speeds, "faster_layout": best},
        "train_img_per_cpu_s": {"median": cpu_median, "rounds": cpu_speeds},
        "sampling_seconds": {
            "median": sample_median,
            "rounds": seconds,
            "ddpm_over_genlab": d_s / g_s,
            "layouts": {"genlab": best["genlab UNet"], "ddpm": best["ddpm-pytorch Unet"]},
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results[f"threads_{args.threads}"] = record
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
