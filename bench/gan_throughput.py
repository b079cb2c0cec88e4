"""Training-step throughput of genlab's default GAN: fp32, fp32 + channels_last, bf16 autocast.

One step = one discriminator update and one generator update (`GAN.d_loss`, `GAN.g_loss`, Adam
as DCGAN), batch 128, 28x28x1. fp32 settings run in interleaved rounds so that load from other
processes hits them alike (median round reported); bf16 autocast runs a few steps only, since
on CPUs without native bf16 it is an order of magnitude slower.

    .venv/bin/python bench/gan_throughput.py [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import nullcontext

import torch

from genlab.models.gan import GAN, GANConfig


def make_step(channels_last: bool, bf16: bool, config: GANConfig):
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = GAN(config).to(memory_format=fmt)
    opt_d = torch.optim.Adam(model.discriminator.parameters(), config.lr_d, betas=config.betas)
    opt_g = torch.optim.Adam(model.generator.parameters(), config.lr_g, betas=config.betas)
    ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else nullcontext

    def step(x: torch.Tensor) -> None:
        x = x.contiguous(memory_format=fmt)
        with ctx():
            loss_d, _ = model.d_loss(x, None, torch.randn(len(x), config.latent_dim))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        model.discriminator.requires_grad_(False)
        with ctx():
            loss_g, _ = model.g_loss(torch.randn(len(x), config.latent_dim))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        model.discriminator.requires_grad_(True)

    return step


def images_per_s(step, x: torch.Tensor, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        step(x)
    return n * len(x) / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10, help="steps per round")
    ap.add_argument("--bf16-steps", type=int, default=3)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    config = GANConfig()
    x = torch.rand(128, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    steps = {
        "fp32": make_step(False, False, config),
        "fp32 + channels_last": make_step(True, False, config),
    }
    for step in steps.values():
        step(x)  # warm-up
    rates: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            rates[name].append(images_per_s(step, x, args.steps))
    bf16 = make_step(True, True, config)
    bf16(x)
    rates["bf16 autocast + channels_last"] = [images_per_s(bf16, x, args.bf16_steps)]
    base = statistics.median(rates["fp32"])
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    print(f"genlab GAN {config}")
    print(f"batch 128, {torch.get_num_threads()} threads, native bf16: {native}")
    print(f"{'setting':30s} {'images/s':>9s} {'vs fp32':>8s}  rounds")
    for name, r in rates.items():
        med = statistics.median(r)
        print(f"{name:30s} {med:9.0f} {med / base:7.2f}x  {[round(v) for v in r]}")


if __name__ == "__main__":
    main()
