"""Training throughput of genlab's latent diffusion model against its pixel-space model.

Both default configurations, the full training step of each (the latent model's includes the
frozen VAE encoder and the posterior sample), AdamW, batch 128, measured alternately in one
process so that machine drift hits both alike. Prints the FLOPs of one training step per image
(torch.utils.flop_counter), images/s and the time per epoch of Fashion-MNIST (60,000 images),
and the ratio.

    .venv/bin/python bench/latent_vs_pixel_speed.py [--threads 1] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from genlab.data import Batch
from genlab.models.ddpm import LATENT_UNET, Diffusion, DiffusionConfig
from genlab.models.vae import VAEConfig


def step_time(model: Diffusion, batch: Batch, steps: int) -> float:
    """Seconds per optimisation step (after one warm-up step)."""
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    for i in range(steps + 1):
        if i == 1:
            start = time.perf_counter()
        loss, _ = model.loss(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - start) / steps


def step_mflop(model: Diffusion, batch: Batch) -> float:
    """MFLOP per image of one forward and backward pass of the loss."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        model.loss(batch)[0].backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / len(batch.x) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--json", type=Path, default=Path("bench/results/latent_vs_pixel.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    vae = VAEConfig(latent_channels=4, beta=0.1)
    models = {
        "pixel": Diffusion(DiffusionConfig()),
        "latent": Diffusion(DiffusionConfig(vae=vars(vae), clip_x0=False, **LATENT_UNET)),
    }
    batch = Batch(torch.rand(args.batch, 1, 28, 28), torch.zeros(args.batch, dtype=torch.long))
    for model in models.values():
        model.train()
        model.to(memory_format=torch.channels_last)
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, model in models.items():
            times[name].append(step_time(model, batch, args.steps))
    result = {}
    for name, model in models.items():
        best = min(times[name])
        unet = sum(p.numel() for p in model.unet.parameters())
        result[name] = {
            "unet_parameters": unet,
            "mflop_per_image": step_mflop(model, batch),
            "images_per_s": args.batch / best,
            "epoch_minutes": 60_000 / (args.batch / best) / 60,
        }
        print(
            f"{name:7s} UNet {unet / 1e6:.2f} M params  {result[name]['mflop_per_image']:.0f} "
            f"MFLOP/img  {args.batch / best:8.1f} img/s  "
            f"epoch {result[name]['epoch_minutes']:.1f} min"
        )
    ratio = result["latent"]["images_per_s"] / result["pixel"]["images_per_s"]
    print(f"latent / pixel throughput: {ratio:.1f}x  (threads {args.threads}, batch {args.batch})")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({**result, "ratio": ratio, "threads": args.threads}, indent=2))


if __name__ == "__main__":
    main()
