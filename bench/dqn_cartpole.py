"""DQN on CartPole-v1 (or another environment): several seeds, one after another, each
evaluated greedily during training; prints per seed the evaluation curve, the first step at
which the mean return reaches the threshold, whether every later evaluation stays there, the
final return and the wall time (with and without the time spent evaluating).

    python bench/dqn_cartpole.py --seeds 0 1 2 3 4 --steps 50000 --eval-episodes 100

Every run trains its whole budget (stop_when_solved false: the curve of the learning itself,
as measured before training stopped once solved; bench/dqn_seeds.py measures the defaults).
Options after `--` go to `genlab train dqn` unchanged (e.g. `-- --dueling --n-step 1`).
Run it alone on the machine: the wall times are the point.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rl_summary import first_and_stays, print_seed, print_summary

import genlab


def curve(rows: list[dict[str, str]]) -> list[tuple[int, float]]:
    """(step, mean greedy return) of the rows where an evaluation ran."""
    return [(int(r["step"]), float(r["eval_return"])) for r in rows
            if not math.isnan(float(r["eval_return"]))]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--eval-every", type=int, default=2_500)
    parser.add_argument("--eval-episodes", type=int, default=100)
    parser.add_argument("--threshold", type=float, default=475.0)
    parser.add_argument("--within", type=int, default=30_000)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--keep", type=Path, default=None, help="Keep the runs under this folder.")
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    options = {}
    for i, a in enumerate(extra):  # --name value / --flag / --no-flag
        if a.startswith("--"):
            value = (
                extra[i + 1] if i + 1 < len(extra) and not extra[i + 1].startswith("--") else None
            )
            name = a[2:].replace("-", "_")
            if value is None:
                options[name.removeprefix("no_")] = not name.startswith("no_")
            else:
                options[name] = type_of(value)
    options.setdefault("stop_when_solved", False)
    root = args.keep or Path(tempfile.mkdtemp(prefix="dqn-bench-"))
    results = []
    for seed in args.seeds:
        run = root / f"{args.env.replace('/', '_')}-seed{seed}"
        genlab.create("dqn", run, env=args.env, max_steps=args.steps, seed=seed,
                      eval_every=args.eval_every, eval_episodes=args.eval_episodes,
                      log_every=args.eval_every, **options)  # fmt: skip
        start = time.perf_counter()  # each run in a fresh process, as a user runs it
        subprocess.run([sys.executable, "-m", "genlab", "train", "--resume", str(run),
                        "--no-progress"], check=True)  # fmt: skip
        elapsed = time.perf_counter() - start
        with open(run / "metrics.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        points = curve(rows)
        first, stays = first_and_stays(points, args.threshold)
        eval_s = float(rows[-1]["eval_s"])
        to_threshold_s = None
        if first is not None:
            row = next(r for r in rows if int(r["step"]) == first)
            to_threshold_s = float(row["elapsed_s"]) - float(row["eval_s"])
        record = {"seed": seed, "first": first, "stays": stays, "final": points[-1][1],
                  "wall_s": elapsed, "train_s": elapsed - eval_s,
                  "to_threshold_train_s": to_threshold_s, "curve": points}  # fmt: skip
        results.append(record)
        print_seed(seed, first, stays, points, args.threshold, elapsed, eval_s)
    print_summary(args.env, results, args.threshold, args.within)
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "options": options,
                    "args": vars(args) | {"json": str(args.json), "keep": str(args.keep)},
                    "results": results,
                },
                indent=2,
            )
        )


def type_of(value: str):
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


if __name__ == "__main__":
    sys.exit(main())
