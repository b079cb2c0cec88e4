"""Time-to-quality peer run: lucidrains' denoising-diffusion-pytorch on Fashion-MNIST.

GaussianDiffusion(Unet(dim=32, dim_mults=(1, 2, 4), channels=1), image_size=28, timesteps=1000,
sampling_timesteps=50, beta_schedule="cosine"), everything else at the package's defaults
(objective "pred_v", DDIM eta 0). 28 is accepted as is: this Unet downsamples twice, so the side
must divide by 4 (28 -> 14 -> 7).

The package's `Trainer` reads only a folder of image files (through torchvision transforms,
with a DataLoader of cpu_count() workers, an Inception FID every 1,000 steps by default), so this
script runs the same update in a plain loop with the Trainer's defaults:
- Adam(lr 1e-4, betas (0.9, 0.99)), grad-norm clipping at 1.0 (`train_lr`, `adam_betas`,
  `max_grad_norm`);
- EMA(beta 0.995, update_every 10) from ema-pytorch, with its own defaults (warm-up after 100
  steps), updated after every optimiser step; the EMA weights sample;
- random horizontal flips (`augment_horizontal_flip=True`), images in [0, 1] (the model
  normalises to [-1, 1] itself).
Batch 64 instead of the Trainer's 16 (the README's example uses 32 with lr 8e-5), to match the
batch of genlab's diffusion benchmark. Data: genlab's loader, all 60,000 training images,
reshuffled every epoch. Training stops at the first step that ends past `--minutes`.

Then `--n` images by its DDIM (50 steps), written one 28x28 grayscale PNG per image into `--out`,
and a JSON record (`--json`, default OUT.json next to the folder) with the steps, images seen,
minutes and sampling seconds. Score them with (genlab venv):
    genlab eval --images OUT --n 1000 --json OUT_eval.json

Run in the ddpm benchmark venv (bench/README.md):
    OMP_NUM_THREADS=1 /work/venvs/ddpm/bin/python bench/ddpm_pytorch_baseline.py \
        --minutes 20 --n 1000 --out /work/runs/ddpm_pytorch_20min
"""

from __future__ import annotations

import argparse
import functools
import importlib.machinery
import json
import sys
import time
import types
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch

from genlab.data import DataSpec, load_data
from genlab.images import save_png

BATCH = 64
LR, ADAM_BETAS, MAX_GRAD_NORM = 1e-4, (0.9, 0.99), 1.0  # the package's Trainer defaults
EMA_DECAY, EMA_EVERY = 0.995, 10  # ditto


def import_ddpm_pytorch() -> tuple[types.ModuleType, str]:
    """Import denoising_diffusion_pytorch; returns (module, a note on torchvision).

    The package imports torchvision at module level, only for its image-folder Dataset and the
    Trainer's `save_image`. The local index holds torchvision 0.28.0 (the release for torch
    2.13.0) only as a CUDA build, whose operator library cannot load against the CPU torch, so
    `import torchvision` fails. Then an empty stand-in takes its place: nothing used here
    touches it.
    """
    note = "torchvision imported"
    try:
        import torchvision  # noqa: F401
    except (ImportError, OSError, RuntimeError) as err:
        for name in [m for m in sys.modules if m.split(".")[0] == "torchvision"]:
            del sys.modules[name]
        stub = types.ModuleType("torchvision")
        stub.transforms = types.ModuleType("torchvision.transforms")
        stub.utils = types.ModuleType("torchvision.utils")
        for module in (stub, stub.transforms, stub.utils):  # for importlib.util.find_spec
            module.__spec__ = importlib.machinery.ModuleSpec(module.__name__, None)
        sys.modules.update(
            {
                "torchvision": stub,
                "torchvision.transforms": stub.transforms,
                "torchvision.utils": stub.utils,
            }
        )
        note = f"torchvision unusable ({type(err).__name__}: {err}); an empty stand-in replaced it"
    import denoising_diffusion_pytorch
    from denoising_diffusion_pytorch import denoising_diffusion_pytorch as module
    from tqdm.auto import tqdm

    module.tqdm = functools.partial(tqdm, disable=True)  # no progress bar per sampling loop
    return denoising_diffusion_pytorch, note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="training wall clock")
    parser.add_argument("--n", type=int, default=1000, help="images to sample")
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNG files")
    parser.add_argument("--json", type=Path, help="record file; default OUT.json")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample-batch", type=int, default=100)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    ddpm, tv_note = import_ddpm_pytorch()
    from ema_pytorch import EMA

    print(tv_note, flush=True)
    torch.manual_seed(args.seed)
    unet = ddpm.Unet(dim=32, dim_mults=(1, 2, 4), channels=1)
    diffusion = ddpm.GaussianDiffusion(
        unet, image_size=28, timesteps=1000, sampling_timesteps=50, beta_schedule="cosine"
    )
    n_params = sum(p.numel() for p in unet.parameters())
    opt = torch.optim.Adam(diffusion.parameters(), lr=LR, betas=ADAM_BETAS)
    ema = EMA(diffusion, beta=EMA_DECAY, update_every=EMA_EVERY)
    images = load_data(DataSpec("fashion-mnist"), "train").images  # (N, 1, 28, 28) uint8
    g = torch.Generator().manual_seed(args.seed)
    print(f"Unet {n_params:,} parameters; {images.shape[0]:,} training images", flush=True)

    budget = args.minutes * 60.0
    steps, order, pos, losses = 0, torch.randperm(images.shape[0], generator=g), 0, []
    start = time.perf_counter()
    while time.perf_counter() - start < budget:
        if pos + BATCH > order.numel():
            order, pos = torch.randperm(images.shape[0], generator=g), 0
        x0 = images[order[pos : pos + BATCH]].float().div_(255.0)  # (B, 1, 28, 28) in [0, 1]
        pos += BATCH
        flip = torch.rand(BATCH, generator=g) < 0.5
        x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
        loss = diffusion(x0)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(diffusion.parameters(), MAX_GRAD_NORM)
        opt.step()
        opt.zero_grad()
        ema.update()
        steps += 1
        losses.append(loss.item())
        if steps % 200 == 0:
            elapsed = time.perf_counter() - start
            print(
                f"step {steps}  loss {np.mean(losses[-200:]):.4f}  {elapsed / 60:.1f} min  "
                f"{steps * BATCH / elapsed:.1f} img/s",
                flush=True,
            )
    train_s = time.perf_counter() - start
    print(f"trained {steps} steps ({steps * BATCH:,} images) in {train_s / 60:.2f} min", flush=True)

    torch.manual_seed(args.seed)
    model = ema.ema_model.eval()
    args.out.mkdir(parents=True, exist_ok=True)
    start, written = time.perf_counter(), 0
    while written < args.n:
        b = min(args.sample_batch, args.n - written)
        x = model.sample(batch_size=b)  # (b, 1, 28, 28) in [0, 1]
        pixels = (x.clamp(0, 1) * 255).round().to(torch.uint8).squeeze(1).numpy()  # (b, 28, 28)
        for i, img in enumerate(pixels):
            save_png(args.out / f"{written + i:05d}.png", img)
        written += b
        print(f"sampled {written}/{args.n}  {time.perf_counter() - start:.0f} s", flush=True)
    sample_s = time.perf_counter() - start

    record = {
        "package": f"denoising-diffusion-pytorch {version('denoising-diffusion-pytorch')}",
        "torch": torch.__version__,
        "torchvision": tv_note,
        "model": "Unet(dim=32, dim_mults=(1, 2, 4), channels=1)",
        "diffusion": "GaussianDiffusion(image_size=28, timesteps=1000, sampling_timesteps=50, "
        "beta_schedule='cosine', objective='pred_v')",
        "params": n_params,
        "batch": BATCH,
        "optimizer": f"Adam(lr={LR}, betas={ADAM_BETAS}), clip {MAX_GRAD_NORM}",
        "ema": f"EMA(beta={EMA_DECAY}, update_every={EMA_EVERY})",
        "threads": args.threads,
        "seed": args.seed,
        "steps": steps,
        "images_seen": steps * BATCH,
        "train_minutes": train_s / 60,
        "final_loss_mean_last_200": float(np.mean(losses[-200:])) if losses else None,
        "n_samples": args.n,
        "sampler": "DDIM 50 steps, eta 0, EMA weights",
        "sampling_seconds": sample_s,
    }
    json_path = args.json or args.out.with_name(args.out.name + ".json")
    json_path.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
