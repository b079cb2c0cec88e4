"""PixelCNN sampling speed: the cached sampler (`PixelCNN.sample`) against the naive one
(`PixelCNN.sample_naive`, the whole network once per pixel), same model, same seed.

Times 64 samples with each (the cached one `--repeats` times, the median), checks that both
drew the same images, and the cached sampler's throughput at batch 500 (what `genlab eval`
uses). `--naive-rows R` runs the naive sampler over the last R rows only (a completion of the
rest) and scales to 28 rows: every pixel costs it the same full pass.

    .venv/bin/python bench/pixelcnn_sampling.py [--run RUN]     # default: a fresh default model
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import genlab
from genlab.models.pixelcnn import PixelCNN, PixelCNNConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--naive-rows", type=int, default=28)
    args = parser.parse_args()
    model = genlab.load(args.run) if args.run else PixelCNN(PixelCNNConfig()).eval()
    torch.set_grad_enabled(False)
    rows = model.grid[0]
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        cached = model.sample(64, generator=torch.Generator().manual_seed(0))
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    start_row = rows - args.naive_rows
    x0 = cached if start_row > 0 else None
    start = time.perf_counter()
    naive = model.sample_naive(
        64, generator=torch.Generator().manual_seed(0), x0=x0, start_row=max(start_row, 0)
    )
    naive_s = (time.perf_counter() - start) * rows / args.naive_rows
    if start_row <= 0:
        agree = (naive == cached).float().mean().item()
        same = f"{torch.equal(naive, cached)} ({agree:.2%} of pixels equal)"
    else:
        same = "not checked (partial run)"
    # in float64 the two agree exactly: rounding is what can flip a draw in float32, and a
    # flipped pixel changes the ones after it
    wide = model.double()
    x0 = cached.double()
    kwargs = {"x0": x0, "start_row": rows - 2}
    a = wide.sample(64, generator=torch.Generator().manual_seed(2), **kwargs)
    b = wide.sample_naive(64, generator=torch.Generator().manual_seed(2), **kwargs)
    same64 = torch.equal(a, b)
    model = wide.float()
    start = time.perf_counter()
    model.sample(500, generator=torch.Generator().manual_seed(1))
    per_1000 = (time.perf_counter() - start) * 2
    print(f"threads {torch.get_num_threads()}, model {sum(p.numel() for p in model.parameters())}")
    print(
        f"64 samples: cached {seconds:.2f} s (runs {', '.join(f'{t:.2f}' for t in times)}), "
        f"naive {naive_s:.1f} s ({args.naive_rows} of {rows} rows run): "
        f"{naive_s / seconds:.0f}x; same images: {same}; float64, last 2 rows: {same64}"
    )
    print(f"cached at batch 500: {per_1000:.1f} s per 1,000 samples")


if __name__ == "__main__":
    main()
