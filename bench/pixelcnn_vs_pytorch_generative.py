"""genlab's PixelCNN against pytorch-generative's GatedPixelCNN at equal wall-clock time.

The peer is the `GatedPixelCNN` of pytorch-generative (github.com/EugenHotaj/pytorch-generative,
its source from the public repository, imported from `--peer-src`; nothing of it is in genlab),
with the settings of its `reproduce()`: n_gated=10, gated_channels=128, head_channels=32,
Adam(lr 1e-3), batch 128, fp32 (it has no mixed precision). Its output head is set to 256 logits
per pixel with cross-entropy for 8-bit images, or 1 Bernoulli logit for binarized images (its
MNIST recipe). Inputs: intensities in [0, 1], as its data loaders give them.

Both train on genlab's Fashion-MNIST loader, one after the other, each for `--minutes` of wall
clock (genlab through its own `genlab train` engine and defaults; or `--genlab-run`, a run
already trained for that budget), binarized afresh every batch with `--binarize`. Both are then
scored on the same test images (the fixed binarization `genlab.data.binarized` with
`--binarize`): the exact NLL in bits per dimension. Sampling: seconds for 64 samples; the peer's
sampler runs the whole network once per pixel, so it is timed over `--peer-rows` rows of the
28 and scaled to the whole image (every pixel costs it the same full pass), and genlab's naive
sampler (`PixelCNN.sample_naive`, also one pass per pixel) is timed the same way for the
speed-up of its cached sampler.

Set-up (a separate venv; the peer's package __init__ imports its data sets and trainer, with
torchvision, scikit-learn and tensorboard, which the model does not need: the script registers
the package bare and imports only the model's modules):
    python3 -m venv /work/venvs/pg && /work/venvs/pg/bin/pip install torch==2.13.0 numpy \
        pillow safetensors tqdm click accelerate && /work/venvs/pg/bin/pip install -e . --no-deps
    # the repository's pytorch_generative/ folder (fetched, e.g. `git show` of each file),
    # copied to /work/venvs/pg/src/pytorch_generative/
    /work/venvs/pg/bin/python bench/pixelcnn_vs_pytorch_generative.py --minutes 20 \
        --peer-src /work/venvs/pg/src --genlab-run RUN
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
import time
import types
from pathlib import Path

import torch
import torch.nn.functional as F

from genlab.data import DataSpec, binarized, load_data

BATCH = 128


def import_peer(src: str):
    """pytorch_generative's GatedPixelCNN. Its package __init__ imports its data sets and
    trainer (torchvision, scikit-learn, tensorboard), which the model does not use: the
    package is registered bare, so that only the model's own modules are imported."""
    package = types.ModuleType("pytorch_generative")
    package.__path__ = [str(Path(src) / "pytorch_generative")]
    sys.modules["pytorch_generative"] = package
    module = importlib.import_module("pytorch_generative.models.autoregressive.gated_pixel_cnn")
    return module.GatedPixelCNN


def peer_nll(model, x: torch.Tensor, binary: bool) -> torch.Tensor:
    """Exact NLL in nats per image of images x (B, 1, 28, 28) as level ids (0..255 or 0/1)."""
    inputs = x.float() if binary else x.float() / 255.0
    out = model(inputs)
    if binary:
        return F.binary_cross_entropy_with_logits(out, x.float(), reduction="none").sum((1, 2, 3))
    return F.cross_entropy(out, x[:, 0].long(), reduction="none").sum((1, 2))


def train_peer(Peer, train_images: torch.Tensor, minutes: float, binary: bool, seed: int):
    torch.manual_seed(seed)
    model = Peer(
        in_channels=1, out_channels=1 if binary else 256,
        n_gated=10, gated_channels=128, head_channels=32,
    )  # fmt: skip
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(seed)
    steps, start = 0, time.perf_counter()
    order = torch.randperm(len(train_images), generator=g)
    while time.perf_counter() - start < minutes * 60:
        at = (steps * BATCH) % (len(order) - BATCH)
        if at < BATCH and steps:
            order = torch.randperm(len(train_images), generator=g)
        x = train_images[order[at : at + BATCH]]
        if binary:  # dynamic binarization, as its MNIST loader does
            x = (torch.rand(x.shape, generator=g) * 255 < x.float()).long()
        loss = peer_nll(model, x, binary).mean() / 784
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        steps += 1
        if steps % 20 == 0:
            print(f"peer step {steps}: {loss.item() / math.log(2):.3f} bits/dim", flush=True)
    return model.eval(), steps, time.perf_counter() - start


def score(nll_fn, test: torch.Tensor, batch: int = 250) -> float:
    """Mean bits per dimension over the test images."""
    total = 0.0
    with torch.inference_mode():
        for i in range(0, len(test), batch):
            total += nll_fn(test[i : i + batch]).sum().item()
    return total / len(test) / (784 * math.log(2))


def time_rows(fn, rows: int) -> float:
    """Seconds of fn(), then scaled from `rows` rows to the image's 28."""
    start = time.perf_counter()
    with torch.inference_mode():
        fn()
    return (time.perf_counter() - start) * 28 / rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--binarize", action="store_true")
    parser.add_argument("--peer-src", required=True, help="folder holding pytorch_generative/")
    parser.add_argument("--genlab-run", default=None, help="a run trained for --minutes already")
    parser.add_argument("--out", default="/tmp/pixelcnn_peer")
    parser.add_argument("--n-test", type=int, default=10_000)
    parser.add_argument("--peer-rows", type=int, default=2)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    import genlab
    from genlab.evaluation.likelihood import nll

    Peer = import_peer(args.peer_src)
    train_images = load_data(DataSpec(), "train").images
    test = load_data(DataSpec(), "test").images[: args.n_test]
    if args.binarize:
        test = binarized(test) // 255
    record: dict = {"minutes": args.minutes, "binarize": args.binarize, "n_test": len(test)}

    # genlab: its own engine and defaults
    run = args.genlab_run
    if run is None:
        run = str(Path(args.out) / ("genlab-bin" if args.binarize else "genlab"))
        genlab.create("pixelcnn", run, max_minutes=args.minutes, binarize=args.binarize)
        genlab.train(run)
    trainer = json.loads((Path(run) / "state" / "trainer.json").read_text())
    (row,), _ = nll(run, n=args.n_test)
    model = genlab.load(run)
    record["genlab"] = {
        "run": run, "steps": trainer.get("step"), "bpd": row.bpd,
        "params": sum(p.numel() for p in model.parameters()),
    }  # fmt: skip
    print(json.dumps(record["genlab"]), flush=True)
    seconds = time_rows(lambda: model.sample(64, generator=torch.Generator().manual_seed(0)), 28)
    naive = time_rows(lambda: _rows(model.sample_naive, model, 64, args.peer_rows), args.peer_rows)
    record["genlab"].update(sample_64_s=seconds, naive_64_s=naive)

    # the peer
    peer, steps, elapsed = train_peer(Peer, train_images, args.minutes, args.binarize, 0)
    bpd = score(lambda x: peer_nll(peer, x.long(), args.binarize), test)
    record["peer"] = {
        "steps": steps, "minutes": elapsed / 60, "bpd": bpd,
        "params": sum(p.numel() for p in peer.parameters()),
    }  # fmt: skip

    def peer_rows() -> None:
        # the loop of its AutoregressiveModel.sample (one full pass of the 28x28 image per
        # pixel, its default sample_fn), stopped after `peer_rows` rows
        x = -torch.ones(64, 1, 28, 28)
        for r in range(args.peer_rows):
            for c in range(28):
                out = peer.forward(x)[:, :, r, c]
                if args.binarize:
                    x[:, :, r, c] = torch.distributions.Bernoulli(logits=out).sample()
                else:
                    v = torch.distributions.Categorical(logits=out).sample()
                    x[:, 0, r, c] = v.float() / 255.0

    record["peer"]["sample_64_s"] = time_rows(peer_rows, args.peer_rows)
    print(json.dumps(record, indent=1))
    g, p = record["genlab"], record["peer"]
    what = "binarized" if args.binarize else "8-bit"
    print(f"\n{what} Fashion-MNIST, {args.minutes:g} minutes each, {len(test)} test images")
    print("| | params | steps of 128 | test bits/dim (exact) | 64 samples (s) |")
    print("|---|---|---|---|---|")
    print(
        f"| genlab pixelcnn | {g['params'] / 1e6:.2f} M | {g['steps']} | {g['bpd']:.4f} | "
        f"{g['sample_64_s']:.1f} (naive {g['naive_64_s']:.0f}) |"
    )
    print(
        f"| pytorch-generative GatedPixelCNN | {p['params'] / 1e6:.2f} M | {p['steps']} | "
        f"{p['bpd']:.4f} | {p['sample_64_s']:.0f} |"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=1))


def _rows(sample_naive, model, n: int, rows: int) -> None:
    """genlab's naive sampler over the first `rows` rows only (a completion from row 28-rows
    of a blank image costs what the first rows cost: one full pass per pixel)."""
    start_row = model.grid[0] - rows
    x0 = torch.zeros(n, model.config.channels, model.config.image_size, model.config.image_size)
    sample_naive(n, generator=torch.Generator().manual_seed(0), x0=x0, start_row=start_row)


if __name__ == "__main__":
    main()
