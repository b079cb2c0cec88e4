"""The DQN's defaults over many seeds at several budgets, judged as a user would judge them:
each run trained in a fresh process with `genlab train` (default options: it stops once solved),
then `genlab eval RUN ... --episodes 100` of all seeds of a budget, whose interquartile mean and
95% stratified-bootstrap interval (Agarwal et al. 2021) this prints beside each run's step at
the stop, its greedy mean return on the 100 evaluation episodes and its training time.

    python bench/dqn_seeds.py --seeds 0 1 2 3 4 5 6 7 8 9 --budgets 30000 50000 --json F

The CPU kind is the environment's: run it again under ATEN_CPU_CAPABILITY=avx2
ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 for an AVX2 machine's trajectories (the
last one moves the Linear layers' sgemm, without which nothing changes here). Options
after `--` go to `genlab train dqn` unchanged. Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--budgets", type=int, nargs="+", default=[30_000, 50_000])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="The return that counts as solved (default: the env's threshold).",
    )
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--keep", type=Path, default=None, help="Keep the runs under this folder.")
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    root = args.keep or Path(tempfile.mkdtemp(prefix="dqn-seeds-"))
    kind = os.environ.get("ATEN_CPU_CAPABILITY", "native")
    genlab_cli = [sys.executable, "-m", "genlab"]
    if args.threshold is None:
        import gymnasium

        args.threshold = gymnasium.spec(args.env).reward_threshold
    report = {"env": args.env, "cpu": kind, "options": extra, "budgets": {}}
    for budget in args.budgets:
        runs, lines = [], []
        for seed in args.seeds:
            run = root / f"{args.env.replace('/', '_')}-{budget}-seed{seed}"
            start = time.perf_counter()
            subprocess.run(
                [
                    *genlab_cli,
                    "train",
                    "dqn",
                    "--env",
                    args.env,
                    "--out",
                    str(run),
                    "--max-steps",
                    str(budget),
                    "--seed",
                    str(seed),
                    "--no-progress",
                    *extra,
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            wall = time.perf_counter() - start
            trainer = json.loads((run / "state/trainer.json").read_text())
            runs.append(run)
            lines.append(
                {
                    "seed": seed,
                    "steps": trainer["step"],
                    "solved": trainer.get("solved"),
                    "wall_s": round(wall, 1),
                    "eval_s": round(trainer["eval_s"], 1),
                }
            )
            print(
                f"budget {budget} seed {seed}: stopped at {trainer['step']} "
                f"({'solved' if trainer.get('solved') else 'budget'}), {wall:.1f} s",
                flush=True,
            )
        out = root / f"eval-{budget}.json"
        subprocess.run(
            [
                *genlab_cli,
                "eval",
                *map(str, runs),
                "--episodes",
                str(args.episodes),
                "--json",
                str(out),
            ],
            check=True,
        )
        record = json.loads(out.read_text())
        for line, mean in zip(lines, record["scores"], strict=True):
            line["return"] = mean
        report["budgets"][budget] = {
            "iqm": record["iqm"],
            "iqm_ci": record["iqm_ci"],
            "runs": lines,
        }
        solved = [r["return"] >= args.threshold for r in lines]
        print(
            f"\n{args.env} ({kind}), {budget} steps: {sum(solved)}/{len(lines)} runs at "
            f">= {args.threshold:g} "
            f"on {args.episodes} evaluation episodes; IQM {record['iqm']:.1f} "
            f"[95% CI {record['iqm_ci'][0]:.1f}, {record['iqm_ci'][1]:.1f}]\n",
            flush=True,
        )
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    sys.exit(main())
