"""The interquartile mean with its 95% stratified-bootstrap interval (genlab.rl.aggregate, as
`genlab eval RUN RUN ...` prints it) of the per-seed final returns in bench/sb3_dqn.py's JSON
records, which come from the peer's own venv without genlab:

    python bench/iqm.py results/sb3-30000.json results/sb3-50000.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from genlab.rl.aggregate import bootstrap_interval


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("records", type=Path, nargs="+")
    parser.add_argument("--threshold", type=float, default=475.0)
    args = parser.parse_args()
    for path in args.records:
        runs = json.loads(path.read_text())["results"]
        scores = np.array([r["final_return"] for r in runs])
        ci = bootstrap_interval(scores)
        solved = int((scores >= args.threshold).sum())
        print(f"{path}: IQM {ci.value:.1f} [95% CI {ci.low:.1f}, {ci.high:.1f}] over "
              f"{len(runs)} seeds, {solved} at >= threshold; per seed "
              + " ".join(f"{s:.1f}" for s in scores))  # fmt: skip


if __name__ == "__main__":
    main()
