"""Training-step time of genlab's default CycleGAN on 28x28x1 images, at two batch sizes, with
and without channels_last.

One step is what `genlab.training.cyclegan` does: the generators' update (six generator passes:
two translations, two cycles, two identities, then backward) and the discriminators' update on
pooled fakes. Settings are timed in interleaved rounds so that load from other processes on a
shared CPU hits all of them alike; the table gives the median round.

    .venv/bin/python bench/cyclegan_speed.py [--rounds 5] [--steps 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from genlab.models.cyclegan import CycleGAN, CycleGANConfig, ImagePool


def make_step(batch: int, channels_last: bool, seed: int = 0):
    torch.manual_seed(seed)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    config = CycleGANConfig()
    model = CycleGAN(config).to(memory_format=fmt)
    g_params = [p for G in model.generators for p in G.parameters()]
    d_params = [p for D in model.discriminators for p in D.parameters()]
    opt_g = torch.optim.AdamW(g_params, config.lr, betas=config.betas, weight_decay=0.0)
    opt_d = torch.optim.AdamW(d_params, config.lr, betas=config.betas, weight_decay=0.0)
    pools = [ImagePool(config.pool_size, (1, 28, 28)) for _ in range(2)]
    x_a = torch.rand(batch, 1, 28, 28).contiguous(memory_format=fmt)
    x_b = torch.rand(batch, 1, 28, 28).contiguous(memory_format=fmt)

    def step() -> None:
        for D in model.discriminators:
            D.requires_grad_(False)
        out = model.g_loss(x_a, x_b)
        opt_g.zero_grad(set_to_none=True)
        out.loss.backward()
        for D in model.discriminators:
            D.requires_grad_(True)
        opt_g.step()
        fake_a, fake_b = pools[0].query(out.fake_a), pools[1].query(out.fake_b)
        loss_d, _ = model.d_loss(x_a, x_b, fake_a, fake_b)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="steps per round and setting")
    args = parser.parse_args()
    settings = [(b, cl) for b in (16, 32) for cl in (False, True)]
    steps = {s: make_step(*s) for s in settings}
    for step in steps.values():  # warm-up: oneDNN primitives, allocator
        step()
    times: dict[tuple[int, bool], list[float]] = {s: [] for s in settings}
    for _ in range(args.rounds):
        for s in settings:
            start = time.perf_counter()
            for _ in range(args.steps):
                steps[s]()
            times[s].append((time.perf_counter() - start) / args.steps)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| batch | channels_last | ms/step (median) | images/s (both domains) |")
    print("|---|---|---|---|")
    for (batch, cl), ts in times.items():
        t = statistics.median(ts)
        print(f"| {batch} | {cl} | {1000 * t:.0f} | {2 * batch / t:.0f} |")


if __name__ == "__main__":
    main()
