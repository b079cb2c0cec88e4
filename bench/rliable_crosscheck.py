"""genlab's interquartile mean and its 95% bootstrap interval beside rliable's, on the same
score matrices (issue 27: the computation written here, cross-checked against rliable).

rliable (1.2.0, with arch's StratifiedBootstrap) runs in its own venv: its pins clash with
genlab's (arch needs pandas < 3):

    python3 -m venv bench-runs/peer-rl
    bench-runs/peer-rl/bin/pip install rliable==1.2.0 'pandas<3'
    .venv/bin/python bench/rliable_crosscheck.py --peer-python bench-runs/peer-rl/bin/python \\
        [--scores runs.json]

The IQM must agree exactly; the interval bounds within the bootstrap's own Monte-Carlo error
(both draw 50,000 replicates, from different random streams).
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import numpy as np

from genlab.rl.aggregate import bootstrap_interval

PEER = """
import json, sys
import numpy as np
from rliable import library as rly, metrics
sets = json.loads(sys.stdin.read())
out = {}
for name, scores in sets.items():
    m = np.array(scores, dtype=float).reshape(len(scores), -1)
    point, ci = rly.get_interval_estimates(
        {"x": m}, lambda s: np.array([metrics.aggregate_iqm(s)]), reps=50000)
    out[name] = [float(point["x"][0]), float(ci["x"][0][0]), float(ci["x"][1][0])]
print(json.dumps(out))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--peer-python", type=Path, required=True)
    p.add_argument("--scores", type=Path, nargs="*", default=[],
                   help="records of `genlab eval RUN RUN ... --json` to add")  # fmt: skip
    args = p.parse_args()
    rng = np.random.default_rng(0)
    sets = {
        "5 runs, one collapsed": [500.0, 498.2, 9.0, 500.0, 497.1],
        "10 runs, normal(400, 60)": list(rng.normal(400, 60, 10)),
        "10 runs, bimodal": [500.0] * 6 + [150.0, 180.0, 90.0, 320.0],
        "30 runs, uniform(0, 500)": list(rng.uniform(0, 500, 30)),
    }
    for path in args.scores:
        record = json.loads(path.read_text())
        sets[f"{path.stem} ({record['env']})"] = record["scores"]
    peer = subprocess.run([str(args.peer_python), "-c", PEER], input=json.dumps(sets),
                          capture_output=True, text=True, check=True)  # fmt: skip
    theirs = json.loads(peer.stdout)
    print(f"{'scores':<34}{'genlab IQM [95% CI]':>30}{'rliable IQM [95% CI]':>30}")
    for name, scores in sets.items():
        ours = bootstrap_interval(np.array(scores))
        t = theirs[name]
        print(f"{name:<34}{ours.value:>10.2f} [{ours.low:7.2f}, {ours.high:7.2f}]"
              f"{t[0]:>10.2f} [{t[1]:7.2f}, {t[2]:7.2f}]")  # fmt: skip


if __name__ == "__main__":
    main()
