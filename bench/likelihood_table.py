"""One likelihood table across families: `genlab nll` of each run, on the same test images.

Each run gives what its family can (`genlab.evaluation.likelihood`): a PixelCNN its exact NLL,
a VAE -ELBO and the IWAE bound, a DDPM its variational bound (Monte Carlo over t), a Glow
-log p(x + u) of its dequantized images (an upper bound on its discrete NLL). Runs trained
with --binarize are scored on the fixed binarization of the test set, the others on 8-bit
pixels; the table says which numbers are exact and which are bounds.

    .venv/bin/python bench/likelihood_table.py RUN... --n 1000 --k 1000 --draws 8
"""

from __future__ import annotations

import argparse
import json
import time

from genlab.evaluation.likelihood import nll
from genlab.runs import Run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--n", type=int, default=1000, help="first n test images (0: all)")
    parser.add_argument("--k", type=int, default=1000, help="IWAE importance samples")
    parser.add_argument("--draws", type=int, default=8, help="DDPM: random t per image")
    args = parser.parse_args()
    lines = [
        "| data | family (run) | measure | nats/image | bits/dim | exact or bound |",
        "|---|---|---|---|---|---|",
    ]
    for run in args.runs:
        opened = Run.open(run)
        config = opened.config
        binary = config.get("model", {}).get("binarize", False)
        start = time.perf_counter()
        rows, n = nll(opened, k=args.k, n=args.n, draws=args.draws)
        seconds = time.perf_counter() - start
        for r in rows:
            kind = "exact" if r.exact else "upper bound"
            print(json.dumps({"run": run, **r._asdict(), "n": n, "seconds": seconds}), flush=True)
            lines.append(
                f"| {'binarized' if binary else '8-bit'} | {config['family']} ({run}) | "
                f"{r.what} | {r.nats:.1f} ± {r.stderr:.1f} | {r.bpd:.4f} | {kind} |"
            )
    print(f"\nfirst {args.n} test images")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
