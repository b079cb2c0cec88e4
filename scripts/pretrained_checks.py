"""Record each shipped image run's check (the small-n evaluation tests/test_pretrained.py
recomputes on every machine) and its spread over seeds, in the run's provenance.json.

The check is FD, modes and the other headline metrics of n samples drawn with seed 0 (the
recorded sampling options), without the references and the memorisation search, which the test
does not compare. The spread is FD's standard deviation over seeds 1..8 at the same n: the test
accepts a difference up to 3 of these, i.e. what drawing other samples would move the figure by,
since another CPU's arithmetic (bf16 or fp32, other kernels) can at most change the samples.
The check's n is smaller for the runs whose sampling is slow (50 DDIM steps of a UNet per image).

    python scripts/pretrained_checks.py [NAME ...]      # all shipped image runs by default
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from genlab.evaluation.evaluate import EvalConfig, evaluate_run
from genlab.pretrained import PROVENANCE, get, headline, shipped
from genlab.runs import load_model
from genlab.sampling import sampling_options

CHECK_N = {"ddpm": 100, "ldm": 100, "t2i": 100, "fm": 200}
"""n of the check where 500 samples take over 20 s on one core (50 UNet steps each); 500
elsewhere."""
SEEDS = range(1, 9)


def options_of(sampling: dict) -> dict:
    """`sampling_options` arguments from a record's sampling entry (strings)."""
    return {
        "sampler": sampling.get("sampler"),
        "steps": int(sampling["steps"]) if "steps" in sampling else None,
        "eta": float(sampling["eta"]) if "eta" in sampling else None,
        "guidance": float(sampling["w"]) if "w" in sampling else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*")
    names = parser.parse_args().names
    evaluators: dict = {}
    for entry in shipped():
        if entry.family in ("dqn", "qtable") or (names and entry.name not in names):
            continue
        t = time.perf_counter()
        run = get(entry.name, Path(tempfile.mkdtemp()) / entry.name)
        provenance = json.loads((entry.path / PROVENANCE).read_text())
        sampling = provenance["check"].get("sampling", {})
        model = load_model(run)
        o = options_of(sampling)
        options = sampling_options(model, o["sampler"], o["steps"], o["eta"], o["guidance"], None)
        n = CHECK_N.get(entry.name, 500)
        records = {}
        for seed in (0, *SEEDS):
            config = EvalConfig(n=n, seed=seed, references=False, memorisation=False)
            records[seed] = evaluate_run(run, config, evaluators=evaluators, described=sampling,
                                         sample_options=options, model=model)  # fmt: skip
        check = records[0]
        fds = [records[seed]["metrics"]["fd"] for seed in SEEDS]
        provenance["check"] = {
            "n": n,
            "seed": 0,
            "sampling": sampling,
            "metrics": headline(check),
            "references": {},
            "spread": {
                "seeds": list(SEEDS),
                "fd_mean": statistics.mean(fds),
                "fd_std": statistics.stdev(fds),
            },  # fmt: skip
        }
        (entry.path / PROVENANCE).write_text(json.dumps(provenance, indent=2) + "\n")
        print(f"{entry.name}: n {n}, FD {check['metrics']['fd']:.2f}, over seeds "
              f"{statistics.mean(fds):.2f} +- {statistics.stdev(fds):.2f} "
              f"({time.perf_counter() - t:.0f} s)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
