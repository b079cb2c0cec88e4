"""Faults, tried many times: every family's training killed with SIGKILL at random points of its
checkpoint writes and between steps, resumed, and compared bit for bit with a run never
interrupted (`tests/fault_injection.py`; the suite's tests/training/test_faults.py makes 2 kills
per kind of step, this makes `--kills` per family); then, where this runs as root and may mount,
a real full disk: a 200 KiB tmpfs that holds one checkpoint of a tiny VAE but not two.

Each family: one reference run (in this process, one thread), then `--kills / 2` chains of 2
kills at points drawn uniformly among the events still ahead (file-system operations of the
checkpoint writes, step boundaries), each kill checked to leave the reference's last complete
checkpoint, then a resume to the end (each step kind's first chain in a new Python process).
Prints one row per family: kills (in checkpoint writes / between steps), resumes, chains that
ended bit-identical, and chains that lost anything (a checkpoint, a row, a bit).

    .venv/bin/python bench/faults.py [--kills 20] [--families vae,gan] [--seed N]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("OMP_NUM_THREADS", "1")

import fault_injection as fi  # noqa: E402
from helpers import TINY_OPTIONS, train_args, write_fashion_mnist  # noqa: E402

from genlab.cli import main as genlab  # noqa: E402
from genlab.families import FAMILIES  # noqa: E402

COMMON = ["--max-steps", "6", "--checkpoint-every", "2", "--log-every", "1",
          "--sample-every", "1000", "--batch-size", "16", "--precision", "fp32",
          "--no-progress"]  # fmt: skip


def create_args(family: str, run: Path, data: Path, vae: Path) -> list[str]:
    options = [str(vae) if o == "VAE" else o for o in TINY_OPTIONS[family]]
    argv = ["train", family, *COMMON, "--data-dir", str(data), *options, "--out", str(run)]
    return train_args(family, argv)


def try_family(family: str, kills: int, seed: int, data: Path, vae: Path, tmp: Path, fresh: bool):
    """The row of one family: kills in writes and between steps, resumes, identical chains,
    chains with a loss, and the problems seen."""
    where = tmp / family
    ref = fi.reference(create_args(family, where / "ref", data, vae), where / "ref", where / "snap")
    rng = random.Random(f"{seed}-{family}")
    counts = {"write": 0, "step": 0, "resumed": 0, "identical": 0, "lost": 0}
    problems = []

    def uniform(ahead):
        at = rng.choice(ahead)
        counts["write" if at[0] == "save" else "step"] += 1
        return at

    for c in range(kills // 2):
        run = where / f"chain{c}"
        chain = fi.kill_chain(
            ref, create_args(family, run, data, vae), run, uniform, 2, seed + c, fresh and c == 0
        )
        counts["resumed"] += chain.resumed
        counts["identical"] += chain.identical
        counts["lost"] += chain.problem is not None
        if chain.problem is not None:
            problems.append(chain.problem)
        shutil.rmtree(run, ignore_errors=True)
    return counts, len(ref.events), problems


def full_disk(tmp: Path, data: Path) -> str:
    """A tiny VAE trained on a 200 KiB tmpfs: the second checkpoint does not fit. Then the
    tmpfs grows (room made) and the run resumes; compared with the same run on a roomy disk."""
    mount = tmp / "small"
    mount.mkdir()
    if os.geteuid() != 0:
        return "full disk (tmpfs): skipped, not root"
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(mount)],
                          capture_output=True, text=True)  # fmt: skip
    if made.returncode != 0:
        return f"full disk (tmpfs): skipped, cannot mount ({made.stderr.strip()})"
    try:
        vae = tmp / "unused"
        ref = fi.reference(create_args("vae", tmp / "roomy", data, vae), tmp / "roomy", tmp / "s")
        log = tmp / "small.log"
        code = fi.child(create_args("vae", mount / "run", data, vae), None, 0, log)
        lines = [x for x in log.read_text().splitlines() if x.strip()]
        kept = fi.checkpoint_module.checkpoint_dir(mount / "run")
        step = fi.trainer_fields(kept)["step"] if kept is not None else None
        intact = kept is not None and fi.same_state(ref.snapshots / str(step), kept) is None
        leftover = (mount / "run" / "state.tmp").exists()
        subprocess.run(["mount", "-o", "remount,size=2m", str(mount)], check=True)
        again = fi.child(["train", "--resume", str(mount / "run"), "--no-progress"], None, 0, log)
        same = again == 0 and fi.same_run(ref.run, mount / "run") is None
        return (
            f"full disk (200 KiB tmpfs): exit {code}, {len(lines)} line(s) "
            f"({lines[-1] if lines else ''!r}); checkpoint of step {step} kept intact: {intact}; "
            f"state.tmp left: {leftover}; resumed with room: exit {again}, bit-identical: {same}"
        )
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20, help="kills per family (even)")
    parser.add_argument("--families", default=",".join(FAMILIES), help="comma-separated")
    parser.add_argument("--seed", type=int, default=random.randrange(10**6))
    args = parser.parse_args()
    families = args.families.split(",")
    start = time.perf_counter()
    print(f"seed {args.seed}, {args.kills} kills per family, 6 steps, checkpoints every 2")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = write_fashion_mnist(tmp / "data", 600, 200, seed=0)
        vae = tmp / "spatial-vae"  # the first stage of ldm and txt2img
        base = ["train", "vae", "--latent-channels", "2", "--widths", "4,8", "--max-steps", "2"]
        with fi.one_thread():
            assert genlab([*base, "--no-progress", "--data-dir", str(data), "--out", str(vae)]) == 0
        print()
        print("| family | step | events | kills (in writes / between steps) | resumed "
              "| bit-identical chains | lost |")  # fmt: skip
        print("|---|---|---|---|---|---|---|")
        seen_kinds, total = set(), {"kills": 0, "identical": 0, "chains": 0, "lost": 0}
        fresh: list[str] = []
        problems = []
        for family in families:
            kind = FAMILIES[family].step.rpartition(":")[2]
            counts, events, seen = try_family(
                family, args.kills, args.seed, data, vae, tmp, kind not in seen_kinds
            )
            if kind not in seen_kinds:
                fresh.append(family)
            seen_kinds.add(kind)
            kills = counts["write"] + counts["step"]
            chains = args.kills // 2
            print(f"| {family} | {kind} | {events} | {kills} ({counts['write']} / "
                  f"{counts['step']}) | {counts['resumed']} | {counts['identical']} of {chains} "
                  f"| {counts['lost']} |", flush=True)  # fmt: skip
            total["kills"] += kills
            total["identical"] += counts["identical"]
            total["chains"] += chains
            total["lost"] += counts["lost"]
            problems += [f"{family}: {p}" for p in seen]
            shutil.rmtree(tmp / family, ignore_errors=True)
        print()
        print(f"{total['kills']} kills, {total['identical']} of {total['chains']} chains "
              f"bit-identical, {total['lost']} lost")  # fmt: skip
        for p in problems:
            print("  ", p)
        print(f"first chain resumed in a new Python process: {', '.join(fresh)}")
        print(full_disk(tmp, data))
    print(f"wall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
