"""The peer for genlab's StyleGAN: lucidrains' stylegan2-pytorch (PyPI 1.9.0) on Fashion-MNIST,
trained for the same wall-clock budget on the same CPU, then sampled for `genlab eval`.

stylegan2-pytorch is written for CUDA: it asserts `torch.cuda.is_available()` on import and calls
`.cuda()` on every tensor and module. This harness runs it unchanged on the CPU by making those
calls no-ops; its training step is otherwise its own (R1 every 4 steps with weight 10, path
length regularisation after 5,000 steps, style mixing 0.9, EMA after 20,000 steps with resets
every 1,000 steps before 25,000). Imports it does not use here are stubbed: aim (logging),
vector_quantize_pytorch (fq_layers, off), torchvision (its folder data set and picture
writing; the images are fed from memory instead).

Images: Fashion-MNIST's 60,000 training images padded with 2 black pixels to 32x32 (its sizes
are powers of two) and repeated to 3 channels (it has no grayscale mode); samples are averaged
back to one channel and the padding cropped, so `genlab eval` sees 28x28 images.

Setup: its packages in their own folder, on the same torch 2.13.0 as genlab (genlab itself is
not imported):
    .venv/bin/pip install --target /work/venvs/sg2lib --no-deps stylegan2-pytorch==1.9.0 \
        kornia==0.9.0 kornia-rs einops fire retry decorator py termcolor

Usage:
    PYTHONPATH=/work/venvs/sg2lib .venv/bin/python bench/stylegan2_pytorch_peer.py \
        --minutes 20 --out OUT
    .venv/bin/genlab eval --images OUT/samples_g --json OUT/g.json
"""

from __future__ import annotations

import argparse
import gzip
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch
from torch import nn


def cpu_only() -> None:
    """Let the CUDA-only peer run on the CPU: .cuda() is the identity, and stub imports."""
    torch.cuda.is_available = lambda: True
    torch.cuda.empty_cache = lambda: None
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    nn.Module.cuda = lambda self, *args, **kwargs: self
    for name in ("aim", "torchvision", "torchvision.transforms", "torchvision.utils",
                 "vector_quantize_pytorch"):  # fmt: skip
        sys.modules[name] = types.ModuleType(name)
    sys.modules["torchvision"].transforms = sys.modules["torchvision.transforms"]
    sys.modules["torchvision"].utils = sys.modules["torchvision.utils"]
    sys.modules["vector_quantize_pytorch"].VectorQuantize = None


def fashion_mnist(root: Path) -> torch.Tensor:
    """(60000, 3, 32, 32) float in [0, 1]: the training images, padded and repeated."""
    path = root / "train-images-idx3-ubyte.gz"
    with gzip.open(path) as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    x = torch.from_numpy(x.copy()).float() / 255
    return torch.nn.functional.pad(x, (2, 2, 2, 2)).expand(-1, 3, -1, -1).contiguous()


def batches(images: torch.Tensor, batch_size: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(images), generator=g)
        for i in range(0, len(order) - batch_size + 1, batch_size):
            yield images[order[i : i + batch_size]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--network-capacity", type=int, default=8)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cpu_only()
    from stylegan2_pytorch import stylegan2_pytorch as sg

    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    trainer = sg.Trainer(
        name="fmnist", base_dir=str(args.out), image_size=32, batch_size=args.batch_size,
        network_capacity=args.network_capacity, gradient_accumulate_every=1,
        save_every=10**9, evaluate_every=10**9, num_workers=0,
    )  # fmt: skip
    trainer.evaluate = lambda *a, **k: None  # writes pictures through torchvision
    trainer.loader = batches(fashion_mnist(args.data_dir), args.batch_size, args.seed)
    start, budget = time.perf_counter(), args.minutes * 60
    while time.perf_counter() - start < budget:
        trainer.train()
        if trainer.steps % 200 == 0:
            rate = trainer.steps * args.batch_size / (time.perf_counter() - start)
            print(f"step {trainer.steps}: d {trainer.d_loss:.3f} g {trainer.g_loss:.3f}, "
                  f"{rate:.0f} images/s", flush=True)  # fmt: skip
    seconds = time.perf_counter() - start
    print(f"trained {trainer.steps} steps of batch {args.batch_size} in {seconds:.0f} s")
    from PIL import Image

    gan = trainer.GAN.eval()
    for which, generator in (("g", gan.G), ("ge", gan.GE)):
        folder = args.out / f"samples_{which}"
        folder.mkdir(exist_ok=True)
        g = torch.Generator().manual_seed(args.seed)
        with torch.inference_mode():
            for i in range(0, args.n, 250):
                b = min(250, args.n - i)
                z = torch.randn(b, gan.G.latent_dim, generator=g)
                w = [(gan.S(z), gan.G.num_layers)]  # no truncation, as genlab eval samples
                noise = torch.rand(b, 32, 32, 1, generator=g)
                x = generator(sg.styles_def_to_tensor(w), noise).clamp(0, 1)
                x = x.mean(1)[:, 2:30, 2:30]  # back to one channel and 28x28
                for j, img in enumerate((x * 255).round().byte().numpy()):
                    Image.fromarray(img, "L").save(folder / f"{i + j:05d}.png")
        print(f"wrote {args.n} samples of {which.upper()} to {folder}")


if __name__ == "__main__":
    main()
