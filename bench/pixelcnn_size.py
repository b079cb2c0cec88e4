"""Choosing the PixelCNN's default size: test bits/dim per CPU-minute.

Trains each candidate (width, layers, head) for the same wall-clock budget on Fashion-MNIST with
genlab's engine (defaults otherwise: bf16 where native, channels_last, batch 128), one after the
other on a quiet machine, then scores the exact NLL of the first 2,000 test images. Prints one
table row per candidate.

    .venv/bin/python bench/pixelcnn_size.py --minutes 3 --out /tmp/pcsize
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import genlab
from genlab.evaluation.likelihood import nll

CANDIDATES = {
    "w32-l6-softmax": {"width": 32, "layers": 6, "head_width": 64},
    "w48-l8-softmax": {"width": 48, "layers": 8, "head_width": 96},
    "w64-l8-softmax": {"width": 64, "layers": 8, "head_width": 128},
    "w48-l8-logistic": {"width": 48, "layers": 8, "head_width": 96, "head": "logistic"},
    "w32-l6-logistic": {"width": 32, "layers": 6, "head_width": 64, "head": "logistic"},
    "w32-l8-logistic": {"width": 32, "layers": 8, "head_width": 64, "head": "logistic"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--out", default="/tmp/pixelcnn_size")
    parser.add_argument("--only", nargs="*", default=None, help="candidate names")
    parser.add_argument("--n", type=int, default=2000, help="test images scored")
    args = parser.parse_args()
    rows = []
    for name, options in CANDIDATES.items():
        if args.only and name not in args.only:
            continue
        out = Path(args.out) / name
        shutil.rmtree(out, ignore_errors=True)
        genlab.create("pixelcnn", out, max_minutes=args.minutes, **options)
        result = genlab.train(out)
        (score,), n = nll(out, n=args.n)
        params = sum(p.numel() for p in genlab.load(out).parameters())
        rows.append((name, params, result.step, result.images_per_s, score.bpd, score.stderr))
        print(json.dumps({"name": name, "bpd": score.bpd, "steps": result.step}), flush=True)
    print(f"\n{args.minutes:g} minutes each, exact test NLL on {args.n} images")
    print("| candidate | params | steps (batch 128) | img/s | test bits/dim |")
    print("|---|---|---|---|---|")
    for name, params, steps, ips, bpd, _ in rows:
        print(f"| {name} | {params / 1e6:.2f} M | {steps} | {ips:.0f} | {bpd:.3f} |")


if __name__ == "__main__":
    main()
