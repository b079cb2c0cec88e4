"""StyleGAN2 training-step speed on Fashion-MNIST-sized images (28x28, grayscale).

One D update and one G update (the losses with style mixing and noise; R1 not included) per
step, on random images. Variants, timed in interleaved rounds (median of the rounds):
- modulation by activation scaling (genlab's default) vs the paper's grouped convolution;
- bf16 autocast vs fp32;
- the discriminator widths and the batch size.

Usage: .venv/bin/python bench/stylegan_speed.py [--rounds 3] [--steps 8]
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import nullcontext
from unittest import mock

import torch

import genlab.models.stylegan as sg


def step_time(cfg: sg.StyleGANConfig, batch: int, bf16: bool, grouped: bool, steps: int) -> float:
    torch.manual_seed(0)
    model = sg.StyleGAN(cfg)
    real = torch.rand(batch, 1, 28, 28)
    ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else nullcontext
    original = sg.modulated_conv2d

    def modulated(*args, **kwargs):
        return original(*args, **{**kwargs, "grouped": grouped})

    with mock.patch.object(sg, "modulated_conv2d", modulated):

        def one() -> None:
            with ctx():
                loss, _ = model.d_loss(real, None, torch.randn(batch, cfg.latent_dim))
            loss.backward()
            with ctx():
                loss, _ = model.g_loss(torch.randn(batch, cfg.latent_dim))
            loss.backward()

        one()
        t = time.perf_counter()
        for _ in range(steps):
            one()
        return (time.perf_counter() - t) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()
    default = sg.StyleGANConfig()
    variants = {
        "default (scaling, bf16, batch 32)": (default, 32, True, False),
        "grouped conv, bf16, batch 32": (default, 32, True, True),
        "scaling, fp32, batch 32": (default, 32, False, False),
        "scaling, bf16, batch 64": (default, 64, True, False),
        "D widths 32,64,128, batch 32": (
            sg.StyleGANConfig(d_widths=(32, 64, 128)), 32, True, False),
    }  # fmt: skip
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.rounds):
        for name, (cfg, batch, bf16, grouped) in variants.items():
            times[name].append(step_time(cfg, batch, bf16, grouped, args.steps))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.rounds}")
    base = statistics.median(times["default (scaling, bf16, batch 32)"])
    for name, ts in times.items():
        (cfg, batch, *_) = variants[name]
        t = statistics.median(ts)
        print(f"{name:40s} {t * 1000:7.0f} ms/step {batch / t:6.0f} images/s {base / t:5.2f}x")


if __name__ == "__main__":
    main()
