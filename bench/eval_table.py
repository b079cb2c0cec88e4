"""A markdown table of the `genlab eval` records of some runs (their RUN/eval/*.json).

One row per record: the run, the sampling options the record was made with, n, the Frechet
distance with the floor and ceilings of the same n, precision, recall, coverage, the
conditional accuracy where classes were asked for, and the seconds spent generating.

    .venv/bin/python bench/eval_table.py RUN [RUN ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def rows(run: Path) -> list[dict]:
    out = []
    for path in sorted((run / "eval").glob("eval-*.json")):
        record = json.loads(path.read_text())
        m, refs = record["metrics"], record.get("references") or {}
        sampling = record["source"].get("sampling") or {}
        out.append(
            {
                "run": run.name,
                "sampling": " ".join(f"{k}={v}" for k, v in sampling.items()) or "defaults",
                "n": record["n"],
                "fd": m["fd"],
                "floor": (refs.get("floor") or {}).get("fd"),
                "blurred": (refs.get("blurred") or {}).get("fd"),
                "precision": m["precision"],
                "recall": m["recall"],
                "coverage": m["coverage"],
                "cond_acc": m.get("conditional_accuracy"),
                "generate_s": record["seconds"]["generate"],
            }
        )
    return out


def fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.3f}" if isinstance(value, float) and value < 10 else f"{value:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+")
    args = parser.parse_args()
    keys = ["run", "sampling", "n", "fd", "floor", "blurred", "precision", "recall", "coverage",
            "cond_acc", "generate_s"]  # fmt: skip
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for run in args.runs:
        for row in rows(run):
            print("| " + " | ".join(fmt(row[k]) if k not in ("run", "sampling") else row[k]
                                    for k in keys) + " |")  # fmt: skip


if __name__ == "__main__":
    main()
