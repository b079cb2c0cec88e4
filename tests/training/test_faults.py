"""Faults, tried (docs/engine.md tables them): training killed with SIGKILL at random points of its
checkpoint writes and between them, for every kind of training step, then resumed, ends
bit-identical to a run never interrupted; a full disk during a checkpoint is one line, the
previous checkpoint kept; a truncated or bit-flipped model.safetensors, config.json or metrics.csv
is one line naming the file, every file of the run untouched; a second `genlab train` of a run in
training is refused. bench/faults.py makes 20 kills per step kind where this file makes 2.

The kills are drawn at random; a failure prints its seed (GENLAB_FAULT_SEED=... repeats it).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import shutil
import signal
from pathlib import Path

import pytest
import torch
from fault_injection import (
    kill_chain,
    reference,
    same_run,
    same_state,
    save_then_step_points,
)
from helpers import TINY_OPTIONS, train_args

from genlab.cli import main
from genlab.errors import GenlabError
from genlab.families import FAMILIES
from genlab.io import load_weights, save_weights
from genlab.runtime import one_thread
from genlab.training import engine, registry
from genlab.training.checkpoint import load_checkpoint
from genlab.training.metrics import kept_metrics

KINDS = {  # one family per kind of training step
    "OneOptimizer": "vae",
    "GANStep": "gan",
    "StyleGANStep": "stylegan",
    "CycleGANStep": "cyclegan",
    "DQNStep": "dqn",
    "QTableStep": "qtable",
}
STEPS, EVERY = 4, 2  # checkpoints at steps 2 and 4
COMMON = ["--max-steps", str(STEPS), "--checkpoint-every", str(EVERY), "--log-every", "1",
          "--sample-every", "1000", "--batch-size", "16", "--precision", "fp32",
          "--no-progress"]  # fmt: skip
SEED = int(os.environ.get("GENLAB_FAULT_SEED", random.randrange(10**6)))


# The agent updates at steps 2 and 4 (1-step returns fill the buffer at once), so that a run
# resumed at 2 logs step 3 between updates (its lr column once showed the initial rate).
MORE = {"dqn": ["--n-step", "1", "--train-every", "2"]}


def create_args(family: str, run: Path, fmnist_dir: Path) -> list[str]:
    argv = ["train", family, *COMMON, "--data-dir", str(fmnist_dir), *TINY_OPTIONS[family]]
    return train_args(family, [*argv, *MORE.get(family, []), "--out", str(run)])


@pytest.fixture(scope="module")
def references(tmp_path_factory, fmnist_dir):
    """The uninterrupted run of a family (trained once per module, in this process)."""
    made = {}

    def get(family: str):
        if family not in made:
            where = tmp_path_factory.mktemp(f"reference-{family}")
            made[family] = reference(
                create_args(family, where / "run", fmnist_dir), where / "run", where / "snapshots"
            )
        return made[family]

    return get


def digests(run: Path) -> dict[str, str]:
    """Every file of a run (and every directory) with the SHA-256 of its bytes."""
    return {
        str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""
        for p in sorted(run.rglob("*"))
    }


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def test_every_kind_of_step_is_tried():
    steps = {registry.STEPS[name].__name__ for name in FAMILIES}
    assert steps == set(KINDS)
    assert all(registry.STEPS[f].__name__ == kind for kind, f in KINDS.items())


@pytest.mark.kernels  # bit-identical resume, as each machine's kernels compute
@pytest.mark.parametrize("kind", KINDS)
def test_killed_while_checkpointing_then_resumed_is_bit_identical(
    kind, references, tmp_path, fmnist_dir
):
    # One kill at a file-system operation of a checkpoint write, one between steps, each
    # checked to leave the reference's last complete checkpoint; then a resume to the end. For
    # one kind that resume is a new Python process (as a user's is: the forks share this one's
    # state), and has steps to train.
    family = KINDS[kind]
    ref = references(family)
    fresh = kind == "OneOptimizer"
    points = save_then_step_points(random.Random(f"{SEED}-{kind}"), STEPS if fresh else None)
    run = tmp_path / "run"
    chain = kill_chain(ref, create_args(family, run, fmnist_dir), run, points, 2, SEED, fresh)
    assert chain.problem is None, f"{chain.problem} (GENLAB_FAULT_SEED={SEED})"
    assert (chain.kills, chain.resumed, chain.identical) == (2, 2, True)


def test_the_kill_check_sees_a_difference(references, tmp_path):
    # Guard against the comparisons passing vacuously: one changed bit of the optimizer state,
    # one changed metrics cell, are differences.
    ref = references("vae")
    run = tmp_path / "run"
    shutil.copytree(ref.run, run)
    assert same_run(ref.run, run) is None
    (run / "state" / "optimizer.safetensors").unlink()
    state = load_weights(ref.run / "state" / "optimizer.safetensors")
    key = next(k for k in state if k.startswith("state.") and state[k].is_floating_point())
    state[key] = state[key].clone()
    state[key].view(-1)[0] = torch.nextafter(state[key].view(-1)[0], torch.tensor(1.0))
    save_weights(run / "state" / "optimizer.safetensors", state, {"step": str(STEPS)})
    assert "differs" in same_state(ref.run / "state", run / "state")
    shutil.copytree(ref.run / "state", run / "state", dirs_exist_ok=True)
    text = (run / "metrics.csv").read_text().splitlines(keepends=True)
    cells = text[2].split(",")
    cells[3] = cells[3][:-1] + ("1" if cells[3][-1] != "1" else "2")
    (run / "metrics.csv").write_text("".join([*text[:2], ",".join(cells), *text[3:]]))
    assert same_run(ref.run, run) == "metrics.csv rows differ"


@pytest.mark.kernels
def test_a_full_disk_during_a_checkpoint_is_one_line_and_keeps_the_last(
    references, tmp_path, fmnist_dir, capsys, monkeypatch
):
    # The second checkpoint's optimizer file fills the disk halfway, and safetensors says so as
    # it does (bench/faults.py fills a real tmpfs: the same error).
    import safetensors.torch
    from safetensors import SafetensorError

    ref = references("vae")
    run = tmp_path / "run"
    real = safetensors.torch.save_file

    def full_disk(tensors, filename, metadata=None):
        if metadata.get("step") == str(STEPS) and "optimizer" in str(filename):
            data = safetensors.torch.save(tensors, metadata=metadata)
            Path(filename).write_bytes(data[: len(data) // 2])
            raise SafetensorError(
                "Error while serializing: I/O error: No space left on device "
                f"(os error {errno.ENOSPC})"
            )
        return real(tensors, filename, metadata=metadata)

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    with one_thread():
        assert main(create_args("vae", run, fmnist_dir)) == 2
    err = one_line_error(capsys)
    assert "No space left on device" in err and f"step {EVERY} is kept" in err, err
    assert not (run / "state.tmp").exists()
    assert load_checkpoint(run).trainer["step"] == EVERY
    assert same_state(ref.snapshots / str(EVERY), run / "state") is None
    monkeypatch.setattr(safetensors.torch, "save_file", real)  # room again: resume
    with one_thread():
        assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    assert same_run(ref.run, run) is None


def copy_run(run: Path, to: Path) -> Path:
    """A copy of a run whose top-level weights are state/'s files, as training leaves them."""
    shutil.copytree(run, to)
    for name in ("model.safetensors", "ema.safetensors"):
        (to / name).unlink()
        os.link(to / "state" / name, to / name)
    return to


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # in place: links too


def flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x80  # (in config.json: not UTF-8; valid flips are tried below)
    with open(path, "r+b") as f:  # in place: model.safetensors is state/'s file too
        f.write(data)


@pytest.mark.parametrize("damage", [truncate, flip], ids=["truncated", "flipped"])
@pytest.mark.parametrize("name", ["model.safetensors", "config.json", "metrics.csv"])
def test_a_damaged_file_is_one_line_naming_it_and_nothing_is_touched(
    name, damage, references, tmp_path, capsys
):
    run = copy_run(references("vae").run, tmp_path / "run")
    damage(run / name)
    before = digests(run)
    assert main(["train", "--resume", str(run), "--max-steps", str(STEPS + 2)]) == 2
    assert name in one_line_error(capsys)
    assert digests(run) == before
    if name == "metrics.csv":  # the curves read what they can (damaged cells as gaps)
        code = main(["plot", str(run), "--out", str(tmp_path / "loss.png")])
        err = capsys.readouterr().err
        assert code == 0 or (code == 2 and err.count("\n") == 1), err
        assert "Traceback" not in err
        assert digests(run) == before


def test_every_bit_flip_of_config_json_is_refused_or_a_valid_config(references, tmp_path):
    # A flip can make another valid config (latent_dim 4 -> 5, seed 0 -> 1): that is a user's
    # edit as far as anyone can tell. Every other is refused with one line naming config.json;
    # none may end in another exception. Building the run for training is what resuming does
    # first; configs that differ only in what building never reads ("versions", "options",
    # "class_names") are built once.
    run = tmp_path / "run"
    shutil.copytree(references("cyclegan").run, run)
    original = (run / "config.json").read_bytes()
    outcomes, built = {"refused": 0, "valid": 0}, {}
    with one_thread():
        for i in range(len(original)):
            data = bytearray(original)
            data[i] ^= 1 << (i % 8)  # every byte, each of the 8 bits in turn along the file
            (run / "config.json").write_bytes(data)
            try:
                config = json.loads(data)
                unread = ("versions", "options", "class_names")
                key = json.dumps(
                    {k: v for k, v in config.items() if k not in unread}, sort_keys=True
                )
            except ValueError:
                key = None
            if key not in built:
                try:
                    engine.build(run, device="cpu")
                    built[key] = "valid"
                except GenlabError as e:
                    message = str(e)
                    assert "config.json" in message and "\n" not in message, (i, message)
                    built[key] = "refused"
            outcomes[built[key]] += 1
    assert outcomes["refused"] > len(original) // 2 and outcomes["valid"] > 0, outcomes


def test_every_bit_flip_or_cut_of_a_weights_file_is_refused(tmp_path):
    # safetensors has no checksum of its own: save_weights stores a SHA-256 in the metadata.
    # Every byte of a small file (a model's header is longer, not different), each of the 8
    # bits in turn along the file, and every cut.
    path = tmp_path / "model.safetensors"
    state = {
        "conv.weight": torch.randn(2, 1, 3, 3),
        "scale": torch.tensor(0.5, dtype=torch.bfloat16),
        "steps": torch.arange(3),
        "empty": torch.zeros(0),
    }
    save_weights(path, state, {"step": "4"})
    original = path.read_bytes()
    for i in range(len(original)):
        data = bytearray(original)
        data[i] ^= 1 << (i % 8)
        path.write_bytes(data)
        with pytest.raises(GenlabError, match="model.safetensors"):
            load_weights(path)
    for n in range(len(original)):
        path.write_bytes(original[:n])
        with pytest.raises(GenlabError, match="model.safetensors"):
            load_weights(path)
    path.write_bytes(original)
    assert all(torch.equal(load_weights(path)[k], v) for k, v in state.items())


def test_weights_without_a_checksum_still_load(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.ones(3)}, str(tmp_path / "old.safetensors"), metadata={"step": "1"})
    assert torch.equal(load_weights(tmp_path / "old.safetensors")["w"], torch.ones(3))


def test_every_bit_flip_or_cut_of_metrics_csv_is_refused(references, tmp_path):
    # The checkpoint stores the log's SHA-256: every row up to it is checked, not just parsed.
    ref = references("vae")
    digest = load_checkpoint(ref.run).trainer["metrics_sha256"]
    original = (ref.run / "metrics.csv").read_bytes()
    path = tmp_path / "metrics.csv"
    path.write_bytes(original)
    assert kept_metrics(path, STEPS, digest) == original
    for i in range(len(original)):
        data = bytearray(original)
        data[i] ^= 1 << (i % 8)
        path.write_bytes(data)
        with pytest.raises(GenlabError, match="metrics.csv"):
            kept_metrics(path, STEPS, digest)
    for n in range(1, len(original)):
        path.write_bytes(original[:n])
        with pytest.raises(GenlabError, match="metrics.csv"):
            kept_metrics(path, STEPS, digest)
    # Without a digest (checkpoints of older versions) a row cut short is still refused.
    path.write_bytes(original[:-3])
    with pytest.raises(GenlabError, match="line .* is damaged"):
        kept_metrics(path, STEPS, None)


@pytest.mark.kernels
def test_rows_after_the_checkpoint_are_dropped_whatever_their_state(references, tmp_path):
    # A run killed after logging rows its checkpoint does not cover: resuming drops them.
    ref = references("vae")
    run = tmp_path / "run"
    shutil.copytree(ref.run, run)
    logged = (run / "metrics.csv").read_bytes()
    with open(run / "metrics.csv", "ab") as f:
        f.write(b"5,0.13,1e-05,551.2,-5")  # a row being written when the process died
    with one_thread():
        assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    assert (run / "metrics.csv").read_bytes() == logged
    assert same_run(ref.run, run) is None


def test_a_second_training_of_the_same_run_is_refused(references, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(references("vae").run, run)
    ready, hold = os.pipe(), os.pipe()
    pid = os.fork()
    if pid == 0:  # the first training: holds the run, waits at its first step until killed

        def wait_at_first_step(*args, **kwargs):
            os.write(ready[1], b"x")
            os.read(hold[0], 1)  # never written

        code = 70
        try:
            torch.set_num_threads(1)
            engine.stop_reason = wait_at_first_step
            code = main(["train", "--resume", str(run), "--max-steps", "100", "--no-progress"])
        finally:
            os._exit(code)
    try:
        assert os.read(ready[0], 1) == b"x"
        before = digests(run)
        assert main(["train", "--resume", str(run), "--max-steps", "200"]) == 2
        err = one_line_error(capsys)
        assert f"process {pid} is training this run already" in err, err
        after = digests(run)
        changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
        # the refused process wrote nothing; the first one's TensorBoard writer may flush its
        # own event file meanwhile (it did, on a loaded machine)
        assert all(k.startswith("tensorboard/") and f".{pid}." in k for k in changed), changed
    finally:
        os.kill(pid, signal.SIGKILL)  # the lock goes with the process: no stale lock
        os.waitpid(pid, 0)
    with one_thread():
        assert main(["train", "--resume", str(run), "--max-steps", str(STEPS + 1)]) == 0
    assert load_checkpoint(run).trainer["step"] == STEPS + 1


def test_no_lock_is_taken_on_a_missing_run(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path / "nothing")]) == 2
    assert "no such run directory" in one_line_error(capsys)
