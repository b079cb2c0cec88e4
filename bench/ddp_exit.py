"""How often a two-process run ends badly: N torchrun launches of a tiny `genlab train ae`,
each with --busy processes spinning beside it (a loaded machine, as under `pytest -n 2`).

Prints every failed launch (its exit code and the last line of its stderr) and the count. The
failure this measures: gloo's worker thread releasing the last collective's tensors while the
interpreter is being finalized ("terminate called without an active exception", SIGABRT), which
`genlab.cli._leave` prevents. Compare with `--finalize`, which lets the processes finalize the
interpreter as before (by a sitecustomize that makes `_leave` return).

    .venv/bin/python bench/ddp_exit.py --runs 40 --busy 2 [--finalize]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from helpers import write_fashion_mnist  # noqa: E402

SPIN = "while True: pass"
AS_BEFORE = """\
import genlab.cli
genlab.cli._leave = lambda code: None
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--busy", type=int, default=2, help="spinning processes beside each run")
    parser.add_argument("--finalize", action="store_true", help="finalize as before the fix")
    args = parser.parse_args()
    torchrun = Path(sys.executable).parent / "torchrun"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = write_fashion_mnist(tmp / "data", 600, 200, seed=0)
        env = dict(os.environ)
        if args.finalize:
            (tmp / "site").mkdir()
            (tmp / "site" / "sitecustomize.py").write_text(AS_BEFORE)
            env["PYTHONPATH"] = os.pathsep.join([str(tmp / "site"), env.get("PYTHONPATH", "")])
        spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(args.busy)]
        failed, start = 0, time.perf_counter()
        try:
            for i in range(args.runs):
                command = [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "genlab",
                           "train", "ae", "--max-steps", "3", "--checkpoint-every", "1",
                           "--batch-size", "32", "--no-progress", "--data-dir", str(data),
                           "--out", str(tmp / f"run{i}")]  # fmt: skip
                done = subprocess.run(command, capture_output=True, text=True, env=env)
                aborted = "terminate called without an active exception" in done.stderr
                if done.returncode != 0:
                    failed += 1
                    why = "SIGABRT at exit" if aborted else done.stderr.strip().splitlines()[-1]
                    print(f"run {i}: exit {done.returncode} ({why})", flush=True)
        finally:
            for p in spinners:
                p.kill()
    seconds = time.perf_counter() - start
    how = "finalizing the interpreter" if args.finalize else "genlab's exit"
    print(f"{failed} of {args.runs} two-process runs failed ({how}, {args.busy} busy processes, "
          f"{seconds:.0f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
