"""N processes train like one: every kind of step (one optimiser: ae, ddpm; two players: gan,
cyclegan with its image pools) under torchrun and `accelerate launch` on 2 CPU processes (gloo),
compared with one process; one process writes the run, every time."""

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from genlab.runs import load_weights

BIN = Path(sys.executable).parent
STEPS = ["--max-steps", "2", "--no-progress", "--precision", "fp32"]
CASES = {
    # family: (options, comparison). "exact": equal to float rounding. "close": BatchNorm over
    # the global batch sums in another order than torch's kernel, and Adam's normalised first
    # steps turn the last bits of a near-zero gradient into a whole step, for a few weights.
    "ae": (["--batch-size", "32"], "exact"),
    "ddpm": (["--batch-size", "32", "--conditional", "--width", "8"], "exact"),
    "gan": (["--batch-size", "32"], "close"),
    "cyclegan": (
        [
            "--class-a",
            "Sneaker",
            "--class-b",
            "Ankle boot",
            "--batch-size",
            "4",
            "--pool-size",
            "4",
            "--ema",
            "0.9",
        ],
        "exact",
    ),  # fmt: skip
}

pytestmark = pytest.mark.skipif(
    shutil.which("torchrun", path=str(BIN)) is None, reason="torchrun is installed with torch"
)


def launch(args: list[str], processes: int, launcher: str = "torchrun"):
    env = None
    if processes == 1:  # one thread, as each process of torchrun/accelerate launch: the same
        command = [sys.executable, "-m", "genlab", *args]  # summation order within a process
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
    elif launcher == "torchrun":
        command = [str(BIN / "torchrun"), "--standalone", "--nproc_per_node", str(processes),
                   "-m", "genlab", *args]  # fmt: skip
    else:
        command = [str(BIN / "accelerate"), "launch", "--cpu", "--num_processes",
                   str(processes), "--num_machines", "1", "--mixed_precision", "no",
                   "--dynamo_backend", "no", "-m", "genlab", *args]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def losses(run: Path) -> list[float]:
    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    key = "loss" if "loss" in rows[0] else "loss_g"
    return [float(r[key]) for r in rows]


def assert_same_training(one: Path, two: Path, how: str) -> None:
    names = ["model.safetensors"] + (
        ["ema.safetensors"] if (one / "ema.safetensors").exists() else []
    )
    for name in names:
        a, b = load_weights(one / name), load_weights(two / name)
        assert a.keys() == b.keys()
        floats = [k for k in a if a[k].is_floating_point()]
        if how == "exact":
            for key in floats:
                torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)
        else:
            diff = torch.cat([(a[k] - b[k]).abs().flatten() for k in floats])
            assert (diff > 1e-6).float().mean() < 1e-3, f"{name}: {diff.max()}"
            assert diff.max() < 1e-4, f"{name}: {diff.max()}"
    # metrics.csv holds the global batch's means, not one process's rows
    assert losses(one) == pytest.approx(losses(two), rel=1e-3)
    assert not {"state.tmp", "state.old"} & {p.name for p in two.iterdir()}


@pytest.mark.parametrize("family", CASES)
def test_two_processes_train_like_one(fmnist_dir, tmp_path, family):
    options, how = CASES[family]
    args = ["train", family, *STEPS, *options, "--data-dir", str(fmnist_dir)]
    launch([*args, "--out", str(tmp_path / "one")], 1)
    launch([*args, "--out", str(tmp_path / "two")], 2)
    assert_same_training(tmp_path / "one", tmp_path / "two", how)
    if family == "cyclegan":  # the pools: one global pool, equal to one process's
        a = load_weights(tmp_path / "one" / "state" / "optimizer.safetensors")
        b = load_weights(tmp_path / "two" / "state" / "optimizer.safetensors")
        for key in ("extra.pool_a.images", "extra.pool_b.images", "extra.pool_a.count"):
            torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-4, msg=key)
        assert int(b["extra.pool_a.count"]) == 4  # full: step 2 swapped images


def test_accelerate_launch_and_resume_under_two_processes(fmnist_dir, tmp_path):
    options, how = CASES["ddpm"]
    args = ["train", "ddpm", *STEPS, *options, "--data-dir", str(fmnist_dir)]
    launch([*args, "--out", str(tmp_path / "one")], 1)
    launch([*args, "--out", str(tmp_path / "two")], 2, launcher="accelerate")
    assert_same_training(tmp_path / "one", tmp_path / "two", how)
    resume = ["train", "--resume", "RUN", "--max-steps", "3", "--no-progress"]
    launch([a if a != "RUN" else str(tmp_path / "one") for a in resume], 1)
    launch([a if a != "RUN" else str(tmp_path / "two") for a in resume], 2)
    assert_same_training(tmp_path / "one", tmp_path / "two", how)


def test_one_process_creates_and_writes_the_run_every_time(fmnist_dir, tmp_path):
    # Both processes creating the run (or writing state.tmp) was a race that failed 1 run in 3.
    args = ["train", "ae", "--max-steps", "3", "--checkpoint-every", "1", "--batch-size", "32",
            "--no-progress", "--data-dir", str(fmnist_dir)]  # fmt: skip
    for i in range(4):
        done = launch([*args, "--out", str(tmp_path / f"r{i}")], 2)
        assert done.stdout.count("step 3 (max_steps)") == 1, done.stdout + done.stderr[-2000:]
    existing = tmp_path / "r0"
    again = subprocess.run(
        [str(BIN / "torchrun"), "--standalone", "--nproc_per_node", "2", "-m", "genlab", *args,
         "--out", str(existing)], capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert again.returncode != 0 and again.stderr.count("error: ") == 1, again.stderr[-2000:]
    assert "already exists" in again.stderr, again.stderr[-2000:]


def test_a_process_of_a_multi_process_run_leaves_with_its_output_and_exit_handlers():
    # _leave skips finalizing the interpreter (gloo's threads abort it): nothing else is lost
    script = (
        "import atexit, sys, genlab.cli\n"
        "atexit.register(lambda: print(' exit handler ran', end=''))\n"
        "print('written', end=''); print('to stderr', end='', file=sys.stderr)\n"
        "genlab.cli._leave(3)\n"
        "print('never')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert (done.returncode, done.stdout, done.stderr) == (
        3, "written exit handler ran", "to stderr"
    )  # fmt: skip
