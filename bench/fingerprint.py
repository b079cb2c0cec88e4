"""Fingerprints of every family's tiny run: to show that a change of structure changed nothing.

For each family of the registry: `genlab train` of its tiny test config (the tests' synthetic
Fashion-MNIST, `--max-steps 4`, a grid and a checkpoint every 2 steps), resumed for 2 more steps,
then `genlab sample` (8 samples, seed 0; a diffusion run also with DDIM and guidance 2). Printed
and written as JSON: a SHA-256 of the metrics.csv rows without the wall-clock columns, of every
weight and training-state tensor, of the grids' pixels and of the samples. Run it before and
after a change and diff the two files:

    PYTHONPATH=src:tests python bench/fingerprint.py --out /tmp/before.json
    ... change ...
    PYTHONPATH=src:tests python bench/fingerprint.py --out /tmp/after.json
    diff /tmp/before.json /tmp/after.json      # nothing: bit-identical

Everything runs in one process, one family after the other, on the CPU in fp32 (the same bits
on every run of one machine; bf16 is checked by the tests).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch


def digest_tensors(directory: Path) -> str:
    """SHA-256 over every tensor of every .safetensors file under `directory`, by name."""
    from safetensors.torch import load_file

    h = hashlib.sha256()
    for path in sorted(directory.rglob("*.safetensors")):
        h.update(str(path.relative_to(directory)).encode())
        for name, tensor in sorted(load_file(path).items()):
            h.update(name.encode())
            h.update(tensor.reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def digest_pngs(directory: Path) -> str:
    """SHA-256 of the pixels of every PNG under `directory` (their metadata names paths)."""
    from PIL import Image

    h = hashlib.sha256()
    for path in sorted(directory.rglob("*.png")):
        h.update(path.name.encode())
        h.update(np.asarray(Image.open(path)).tobytes())
    return h.hexdigest()


def digest_metrics(run: Path) -> str:
    """SHA-256 of metrics.csv without its wall-clock columns (rates, elapsed and eval times)."""
    import csv

    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    timed = ("_per_s", "elapsed_s", "eval_s")
    kept = [{k: v for k, v in r.items() if not k.endswith(timed)} for r in rows]
    return hashlib.sha256(json.dumps(kept).encode()).hexdigest()


def fingerprint(family: str, data_dir: Path, vae: Path, out: Path) -> dict[str, str]:
    from helpers import TINY_OPTIONS, train_args

    import genlab
    from genlab.cli import main

    tiny = [str(vae) if a == "VAE" else a for a in TINY_OPTIONS[family]]
    base = ["--data-dir", str(data_dir), "--batch-size", "16", "--no-progress",
            "--precision", "fp32", "--sample-every", "2", "--checkpoint-every", "2",
            "--log-every", "1"]  # fmt: skip
    run = out / family
    args = ["train", family, *train_args(family, [*base, *tiny]), "--max-steps", "4"]
    if main([*args, "--out", str(run)]) != 0:
        raise SystemExit(f"{family}: training failed")
    if main(["train", "--resume", str(run), "--max-steps", "6", "--no-progress"]) != 0:
        raise SystemExit(f"{family}: resuming failed")
    record = {
        "metrics": digest_metrics(run),
        "weights": digest_tensors(run),
        "grids": digest_pngs(run / "samples") if (run / "samples").is_dir() else "-",
    }
    model = genlab.load(run)
    if hasattr(model, "sample"):
        torch.manual_seed(0)
        images = genlab.sample(run, 8, seed=0, model=model).images
        record["samples"] = hashlib.sha256(images.numpy().tobytes()).hexdigest()
        if hasattr(model, "schedule"):  # a diffusion model: another sampler, guidance
            kw = {"sampler": "ddim", "steps": 2}
            if getattr(model.config, "num_classes", 0) or family == "txt2img":
                kw["guidance"] = 2.0
            images = genlab.sample(run, 8, seed=1, model=model, **kw).images
            record["samples_ddim"] = hashlib.sha256(images.numpy().tobytes()).hexdigest()
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("results/fingerprint.json"))
    parser.add_argument("--families", nargs="*", help="default: every family")
    args = parser.parse_args()
    from helpers import write_fashion_mnist

    from genlab.cli import main as genlab_main
    from genlab.families import FAMILIES

    torch.set_num_threads(1)  # the same reduction order on every machine size
    records = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = write_fashion_mnist(tmp / "fmnist", n_train=200, n_test=100)
        vae = tmp / "first-stage"
        vae_args = ["train", "vae", "--latent-channels", "2", "--widths", "4,8", "--data-dir",
                    str(data), "--max-steps", "2", "--batch-size", "16", "--no-progress",
                    "--precision", "fp32", "--out", str(vae)]  # fmt: skip
        if genlab_main(vae_args) != 0:
            raise SystemExit("the first-stage VAE failed")
        for family in args.families or list(FAMILIES):
            records[family] = fingerprint(family, data, vae, tmp)
            print(family, " ".join(f"{k}={v[:12]}" for k, v in records[family].items()),
                  flush=True)  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records, indent=1, sort_keys=True) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
