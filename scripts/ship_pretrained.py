"""Add a trained run to genlab's shipped runs (src/genlab/pretrained/runs/NAME/).

Evaluates the run twice with `genlab eval`'s code, at n = 10,000 (the figure `genlab pretrained
list` shows) and at the small `--check-n` that tests/test_pretrained.py recomputes on every
machine, then copies the config and weights with a provenance record. Run alone on the machine:

    .venv/bin/python scripts/ship_pretrained.py RUN NAME --summary "DCGAN, 20 CPU-minutes" \\
        --command "genlab train gan --data fashion-mnist --out runs/gan20 --max-minutes 20" \\
        --machine "2-core AMD EPYC Zen 4, bf16 autocast" [--sampler ddim --steps 50 --guidance 3]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import genlab
from genlab.evaluation.evaluate import EvalConfig
from genlab.pretrained import SHIPPED, ship
from genlab.runs import Run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("name")
    parser.add_argument("--summary", required=True)
    parser.add_argument("--command", action="append", required=True, dest="commands")
    parser.add_argument("--machine", required=True)
    parser.add_argument("--eval-json", type=Path, help="an existing n = 10,000 record to reuse")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--check-n", type=int, default=500)
    parser.add_argument("--sampler")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--guidance", type=float)
    parser.add_argument("--root", type=Path, default=SHIPPED)
    parser.add_argument("--first-stage", type=Path, help="a latent model's VAE run")
    args = parser.parse_args(argv)
    sampling = {"sampler": args.sampler, "steps": args.steps, "guidance": args.guidance}
    if Run.open(
        args.run
    ).family.agent:  # greedy episodes: 100 for the record, --check-n (20) for the tests
        from genlab.evaluation.agent import evaluate_agent

        evaluate = lambda n: evaluate_agent(args.run, n)[0]  # noqa: E731
        n, check_n = 100, min(args.check_n, 20)
    else:
        evaluate = lambda n: genlab.evaluate(args.run, config=EvalConfig(n=n), **sampling)[0]  # noqa: E731
        n, check_n = args.n, args.check_n
    full = json.loads(args.eval_json.read_text()) if args.eval_json else evaluate(n)
    check = evaluate(check_n)
    folder = ship(
        args.run,
        args.name,
        summary=args.summary,
        commands=args.commands,
        evaluation=full,
        check=check,
        machine=args.machine,
        root=args.root,
        first_stage=args.first_stage,
    )
    if "episodes" in full:
        print(f"wrote {folder}: mean return {full['mean']:.1f} ({full['episodes']} episodes), "
              f"check {check['mean']:.1f} ({check['episodes']})")  # fmt: skip
    else:
        print(f"wrote {folder}: FD {full['metrics']['fd']:.1f} (n = {full['n']}), "
              f"check FD {check['metrics']['fd']:.1f} (n = {check['n']})")  # fmt: skip


if __name__ == "__main__":
    main()
