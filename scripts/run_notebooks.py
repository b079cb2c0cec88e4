"""Execute the notebooks in notebooks/ and write the executed copies, outputs included.

`make notebooks` runs this in full (the copies in docs/notebooks/ are what the docs site shows);
`--quick` sets GENLAB_NOTEBOOK_QUICK=1 as the tests do. Each notebook runs in a fresh kernel of
this Python (the kernel spec "python3" starts `sys.executable`), in a temporary working
directory, and its runs go to a temporary folder of its own. OMP_NUM_THREADS defaults to 1.

    python scripts/run_notebooks.py [--quick] [--out docs/notebooks] [NAME ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def execute(path: Path, out: Path, timeout: int) -> float:
    """Run one notebook top to bottom and write it with its outputs to out/; the seconds taken."""
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="genlab-notebooks-") as workdir:
        client = NotebookClient(
            nb,
            kernel_name="python3",
            timeout=timeout,
            record_timing=False,  # no timestamps: a re-run changes only what it computes
            resources={"metadata": {"path": workdir}},
        )
        client.execute()
    seconds = time.perf_counter() - start
    nbformat.write(nb, out / path.name)
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebook names (default: all of notebooks/)")
    parser.add_argument("--quick", action="store_true", help="GENLAB_NOTEBOOK_QUICK=1")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "notebooks")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = parser.parse_args()
    os.environ["GENLAB_NOTEBOOK_QUICK"] = "1" if args.quick else "0"
    # One OpenMP thread per kernel unless told otherwise: the notebooks' models are small, one
    # thread was as fast as two here, and two threads sharing 2 cores with any other process
    # spin-wait on each other (a 2,000-step VAE took 20x longer with a busy second core).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    paths = sorted((ROOT / "notebooks").glob("*.ipynb"))
    if args.names:
        paths = [p for p in paths if p.stem in args.names or p.name in args.names]
    if not paths:
        print("no notebooks to run", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for path in paths:
        seconds = execute(path, args.out, args.timeout)
        print(f"{path.name}: {seconds:.1f} s -> {args.out / path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
