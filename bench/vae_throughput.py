"""Training-step throughput of genlab's default VAE: fp32, fp32 + channels_last, bf16 autocast.

One step = forward, `model.loss`, backward, plain Adam update, at batch 128 on 28x28x1 inputs.
The settings are timed in interleaved rounds (fp32, channels_last, fp32, ...) so that load from
other processes on a shared CPU hits all of them alike; the table gives the median round.
bf16 autocast is timed for a few steps only: on CPUs without native bf16 (no AVX512-BF16/AMX)
it is an order of magnitude slower than fp32.

    .venv/bin/python bench/vae_throughput.py
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import nullcontext

import torch

from genlab.data import Batch
from genlab.models.vae import VAE, VAEConfig


def make_step(channels_last: bool, bf16: bool, seed: int):
    torch.manual_seed(seed)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = VAE(VAEConfig()).to(memory_format=fmt)
    opt = torch.optim.Adam(model.parameters(), 2e-3)
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()

    def step(batch: Batch) -> None:
        with ctx:
            loss, _ = model.loss(Batch(batch.x.contiguous(memory_format=fmt), batch.y))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def time_steps(step, batch: Batch, n: int) -> float:
    """Images per second over n steps."""
    start = time.perf_counter()
    for _ in range(n):
        step(batch)
    return n * batch.x.shape[0] / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per setting")
    parser.add_argument("--steps", type=int, default=20, help="steps per round")
    parser.add_argument("--bf16-steps", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    g = torch.Generator().manual_seed(args.seed)
    x = torch.rand(args.batch_size, 1, 28, 28, generator=g)  # (B, 1, 28, 28) in [0, 1]
    batch = Batch(x, torch.zeros(args.batch_size, dtype=torch.long))
    settings = {
        "fp32": make_step(False, False, args.seed),
        "fp32 + channels_last": make_step(True, False, args.seed),
    }
    rates: dict[str, list[float]] = {name: [] for name in settings}
    for step in settings.values():
        time_steps(step, batch, 10)  # warm-up: allocator, oneDNN primitive caches
    for _ in range(args.rounds):
        for name, step in settings.items():
            rates[name].append(time_steps(step, batch, args.steps))
    bf16 = make_step(False, True, args.seed)
    time_steps(bf16, batch, 1)
    rates["bf16 autocast"] = [time_steps(bf16, batch, args.bf16_steps)]

    base = statistics.median(rates["fp32"])
    print(f"genlab VAE {VAEConfig()}, batch {args.batch_size}, {torch.get_num_threads()} threads")
    print(f"{'setting':22s} {'images/s':>9s} {'vs fp32':>8s} {'min':>8s} {'max':>8s}")
    for name, r in rates.items():
        med = statistics.median(r)
        print(f"{name:22s} {med:9.0f} {med / base:7.2f}x {min(r):8.0f} {max(r):8.0f}")


if __name__ == "__main__":
    main()
