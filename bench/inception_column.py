"""The standard FID (Inception-v3, clean resize) of every shipped image run: the "FID
(Inception)" column of the quality tables (docs/quality.md, README).

Each shipped run is sampled as its recorded evaluation was (the sampler options of its
provenance), n samples against n test images (the evaluator's seeded choice), with n real
training images as the floor (sampling noise alone at this n) and the same blurred as a
ceiling. Inception at 299x299 costs ~50 ms an image on 2 CPU cores: n = 1,000 for 13 runs takes
about half an hour.

    .venv/bin/python bench/inception_column.py --n 1000 [--json out.json] [NAME ...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from genlab.evaluation.evaluate import EvalConfig, evaluate_run
from genlab.evaluation.inception import PACKAGED
from genlab.pretrained import get, shipped
from genlab.runs import load_model
from genlab.sampling import sampling_options

AGENTS = ("dqn", "qtable")


def recorded_options(sampling: dict) -> dict:
    names = {"sampler": ("sampler", str), "steps": ("steps", int), "eta": ("eta", float),
             "w": ("guidance", float)}  # fmt: skip
    return {names[k][0]: names[k][1](v) for k, v in sampling.items() if k in names}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="*")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--json", type=Path, default=Path("bench-runs/inception_column.json"))
    args = p.parse_args()
    entries = [e for e in shipped() if e.family not in AGENTS]
    entries = [e for e in entries if not args.names or e.name in args.names]
    results = json.loads(args.json.read_text()) if args.json.is_file() else {}
    evaluators: dict = {}
    config = EvalConfig(n=args.n, seed=0, references=True, memorisation=False)
    with tempfile.TemporaryDirectory() as tmp:
        for entry in entries:
            t = time.perf_counter()
            run = get(entry.name, Path(tmp) / entry.name)
            model = load_model(run)
            sampling = entry.provenance.get("eval", {}).get("sampling", {})
            options = sampling_options(model, **recorded_options(sampling))
            record = evaluate_run(run, config, inception_weights=PACKAGED, model=model,
                                  evaluators=evaluators, described=sampling,
                                  sample_options=options)  # fmt: skip
            refs = record.get("references") or {}
            results[entry.name] = {
                "n": args.n,
                "sampling": sampling,
                "fid_inception": record["metrics"]["fid_inception"],
                "fd_genlab_n10000": entry.provenance.get("eval", {}).get("metrics", {}).get("fd"),
                "floor": (refs.get("floor") or {}).get("fd"),
                "blurred": (refs.get("blurred") or {}).get("fd"),
                "seconds": round(time.perf_counter() - t, 1),
            }
            config = EvalConfig(n=args.n, seed=0, references=False, memorisation=False)
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(results, indent=1))
            r = results[entry.name]
            line = f"{entry.name:<12} FID (Inception) {r['fid_inception']:8.2f}   "
            print(line + f"FD {r['fd_genlab_n10000']:7.1f}   {r['seconds']:.0f} s", flush=True)
    floor = next((r["floor"] for r in results.values() if r.get("floor") is not None), None)
    print(f"n = {args.n}; real training images against the test images (floor): {floor}")


if __name__ == "__main__":
    main()
