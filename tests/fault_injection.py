"""Training killed at chosen points and resumed, compared bit for bit with a run never interrupted
(tests/training/test_faults.py keeps 2 kills per kind of step; bench/faults.py makes 20).

A point is an event of training: a step boundary `("step", s)`, or the i-th file-system operation
of the checkpoint written at step s, `("save", s, i)`: a directory made or removed, a file created,
written (a safetensors or JSON file killed halfway through its bytes), fsynced, renamed, linked or
unlinked. A reference run records its events in order (`reference`); then a chain of children,
forked from this process (nothing is imported again), each runs `genlab train` until it kills
itself with SIGKILL at its point (`child`), and a last one resumes to the end (`kill_chain`).
Every child trains on one thread, as the reference does, so that the same kernels sum in the same
order.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import torch
from helpers import board_scalars, csv_scalars

from genlab.cli import main
from genlab.runs import load_weights
from genlab.runtime import one_thread
from genlab.training import checkpoint as checkpoint_module
from genlab.training import engine as engine_module

Event = tuple  # ("step", s) or ("save", s, i, what)
WALL_CLOCK = ("images_per_s", "steps_per_s", "elapsed_s", "eval_s")
"""metrics.csv and trainer.json fields that measure time, not training."""
SWAP = "replace state.tmp"
"""The operation that completes a checkpoint (state.tmp/ renamed to state/)."""


class Killer:
    """What the hooks ask at every event: record it, and say whether to die there."""

    def __init__(self, kill_at: Event | None = None, seed: int = 0):
        self.kill_at, self.events = kill_at, []
        self.rng = random.Random(seed)

    def __call__(self, event: Event) -> bool:
        self.events.append(event)
        return self.kill_at is not None and event[:3] == self.kill_at[:3]


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@contextlib.contextmanager
def hooks(killer: Killer, on_saved: Callable[[int], None] | None = None) -> Iterator[None]:
    """Report every event of training to `killer`, dying where it says (a write leaves a random
    prefix of its bytes); `on_saved(step)` after each complete checkpoint."""
    import safetensors.torch

    saving: list[int] = []  # the step of the checkpoint being written, while it is
    count = [0]
    patched: list[tuple[object, str, object]] = []

    def patch(owner, name, make):
        original = getattr(owner, name)
        patched.append((owner, name, original))
        setattr(owner, name, make(original))

    def operation(what: Callable[..., str]):
        def make(original):
            def hooked(*args, **kwargs):
                if saving:
                    count[0] += 1
                    if killer(("save", saving[0], count[0], what(*args, **kwargs))):
                        die()
                return original(*args, **kwargs)

            return hooked

        return make

    def name_of(path, *_, **__) -> str:
        return Path(os.fsdecode(path)).name if isinstance(path, str | bytes | os.PathLike) else ""

    for name in ("mkdir", "rmdir", "unlink", "link", "fsync"):
        patch(os, name, operation(lambda *a, name=name, **k: f"{name} {name_of(*a)}"))
    patch(os, "replace", operation(lambda src, dst, **k: f"replace {name_of(src)}"))
    patch(os, "rename", operation(lambda src, dst, **k: f"rename {name_of(src)}"))

    def creating(original):
        def hooked(path, flags, *args, **kwargs):
            if saving and flags & os.O_CREAT:
                count[0] += 1
                if killer(("save", saving[0], count[0], f"create {name_of(path)}")):
                    die()
            return original(path, flags, *args, **kwargs)

        return hooked

    patch(os, "open", creating)

    def partial(what: str, whole: Callable[..., bytes], write: Callable[..., None]):
        def make(original):
            def hooked(*args, **kwargs):
                if saving:
                    count[0] += 1
                    if killer(("save", saving[0], count[0], what)):
                        data = whole(*args, **kwargs)
                        write(data[: killer.rng.randrange(len(data) + 1)], *args, **kwargs)
                        die()
                return original(*args, **kwargs)

            return hooked

        return make

    def safetensors_bytes(tensors, filename, metadata=None):
        return safetensors.torch.save(tensors, metadata=metadata)

    def write_file(data, tensors, filename, metadata=None):
        Path(filename).write_bytes(data)

    def json_bytes(obj, f, **kwargs):
        return json.dumps(obj, **kwargs).encode()

    def write_json(data, obj, f, **kwargs):
        f.write(data.decode())
        f.flush()

    patch(
        safetensors.torch, "save_file", partial("write safetensors", safetensors_bytes, write_file)
    )
    patch(json, "dump", partial("write trainer.json", json_bytes, write_json))

    def opening(original):  # trainer.json is opened by the builtin open (io, not os.open)
        def hooked(path, mode="r", *args, **kwargs):
            if saving and any(c in mode for c in "wax+"):
                count[0] += 1
                if killer(("save", saving[0], count[0], f"create {name_of(path)}")):
                    die()
            return original(path, mode, *args, **kwargs)

        return hooked

    checkpoint_module.open = opening(open)  # a module global shadows the builtin

    def save_checkpoint(original):
        def hooked(run_dir, model, ema, optimizer, trainer, extra=None):
            saving.append(trainer["step"])
            count[0] = 0
            try:
                original(run_dir, model, ema, optimizer, trainer, extra)
            finally:
                saving.clear()
            if on_saved is not None:
                on_saved(trainer["step"])

        return hooked

    patch(engine_module, "save_checkpoint", save_checkpoint)

    def stop_reason(original):
        def hooked(tcfg, step, *args, **kwargs):
            if killer(("step", step)):
                die()
            return original(tcfg, step, *args, **kwargs)

        return hooked

    patch(engine_module, "stop_reason", stop_reason)
    try:
        yield
    finally:
        del checkpoint_module.open
        for owner, name, original in reversed(patched):
            setattr(owner, name, original)


def child(argv: list[str], kill_at: Event | None, seed: int, log: Path) -> int:
    """`genlab ARGV` in a forked child that dies at `kill_at`; returns its exit code, or
    -SIGKILL when it was killed. Its stdout and stderr go to `log`."""
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 70
        try:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            torch.set_num_threads(1)
            with hooks(Killer(kill_at, seed)):
                code = main(argv)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def fresh_process(argv: list[str], log: Path) -> int:
    """`genlab ARGV` in a new Python process on one thread; its output goes to `log`."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with open(log, "ab") as out:
        command = [sys.executable, "-m", "genlab", *argv]
        return subprocess.run(command, stdout=out, stderr=out, env=env).returncode


class Reference(NamedTuple):
    """An uninterrupted run: its directory, its events in order, and a copy of every
    checkpoint it wrote (`snapshots/<step>`)."""

    run: Path
    events: list[Event]
    snapshots: Path


def reference(argv: list[str], run: Path, snapshots: Path) -> Reference:
    """Train `genlab ARGV` (which writes `run`) in this process on one thread, recording its
    events and a copy of each checkpoint."""

    def snapshot(step: int) -> None:
        shutil.copytree(run / "state", snapshots / str(step), dirs_exist_ok=True)

    killer = Killer()
    with one_thread(), hooks(killer, snapshot):
        code = main(argv)
    assert code == 0, f"the reference run failed: genlab {' '.join(argv)}"
    return Reference(run, killer.events, snapshots)


def last_complete(events: list[Event], index: int) -> int | None:
    """The step of the last checkpoint whose swap finished before event `index` (None: none)."""
    done = [e[1] for e in events[:index] if e[0] == "save" and e[3] == SWAP]
    return done[-1] if done else None


def resume_index(events: list[Event], step: int | None) -> int:
    """Where a run resuming from the checkpoint at `step` starts among the events."""
    return events.index(("step", step if step is not None else 0))


def same_tensors(a: Path, b: Path) -> str | None:
    """None when two safetensors files hold bit-identical tensors, else what differs."""
    x, y = load_weights(a), load_weights(b)
    if x.keys() != y.keys():
        return f"{a.name}: keys differ"
    for key in x:
        if x[key].dtype != y[key].dtype or not torch.equal(x[key], y[key]):
            return f"{a.name}: {key} differs"
    return None


def trainer_fields(state: Path) -> dict:
    """trainer.json without its wall-clock fields (and the digest of metrics.csv, whose rows
    hold wall-clock columns; `same_run` compares the rows)."""
    trainer = json.loads((state / "trainer.json").read_text())
    return {k: v for k, v in trainer.items() if k not in (*WALL_CLOCK, "metrics_sha256")}


def same_state(a: Path, b: Path) -> str | None:
    """None when two checkpoint directories are the same training state, else what differs."""
    names = sorted(p.name for p in a.iterdir())
    if names != sorted(p.name for p in b.iterdir()):
        return f"{b}: files {sorted(p.name for p in b.iterdir())} instead of {names}"
    for name in names:
        if name.endswith(".safetensors") and (diff := same_tensors(a / name, b / name)):
            return diff
    if trainer_fields(a) != trainer_fields(b):
        return "trainer.json differs"
    return None


def metric_rows(run: Path) -> list[dict[str, str]]:
    """metrics.csv without its wall-clock columns."""
    with open(run / "metrics.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k not in WALL_CLOCK} for r in csv.DictReader(f)]


def files(run: Path) -> list[str]:
    """The run's files, but for TensorBoard's event files (named by clock and process id; their
    contents are compared with metrics.csv instead)."""
    return sorted(str(p.relative_to(run)) for p in run.rglob("*")
                  if "tensorboard" not in p.relative_to(run).parts[:1])  # fmt: skip


def same_run(a: Path, b: Path) -> str | None:
    """None when two finished runs are bit-identical (weights, EMA, optimizer and RNG state,
    trainer.json and metrics.csv but for wall-clock fields, the same files), else what differs."""
    if files(a) != files(b):
        return f"files differ: {sorted(set(files(a)) ^ set(files(b)))}"
    for name in ("model.safetensors", "ema.safetensors"):
        if (a / name).is_file() and (diff := same_tensors(a / name, b / name)):
            return f"top-level {diff}"
    if diff := same_state(a / "state", b / "state"):
        return diff
    if metric_rows(a) != metric_rows(b):
        return "metrics.csv rows differ"
    if (b / "tensorboard").is_dir() and (events := board_scalars(b)) != (rows := csv_scalars(b)):
        tag = next(k for k in sorted(set(events) | set(rows)) if events.get(k) != rows.get(k))
        return f"TensorBoard's {tag} {events.get(tag)} differs from metrics.csv's {rows.get(tag)}"
    return None


class Chain(NamedTuple):
    """What one chain of kills did: kills made, resumes that ran, whether it ended
    bit-identical, and what went wrong (None: nothing)."""

    kills: int
    resumed: int
    identical: bool
    problem: str | None


def kill_chain(
    ref: Reference,
    create: list[str],
    run: Path,
    points: Callable[[list[Event]], Event],
    kills: int,
    seed: int,
    fresh: bool = False,
) -> Chain:
    """`kills` children killed at the events `points` picks among those still ahead (from where
    the run resumes), each checked to have left the reference's last complete checkpoint, then
    one resume to the end, compared with the reference.

    Args:
        create: the `genlab train FAMILY ... --out RUN` arguments that made the reference,
            with `run` as --out.
        fresh: make the last resume a new Python process (`python -m genlab`, one thread),
            as a user's is, instead of a fork of this one.
    """
    log = run.with_suffix(".log")
    made, resumed, step = 0, 0, None
    for k in range(kills):
        start = resume_index(ref.events, step)  # a resumed run saves `step` no more
        at = points([e for e in ref.events[start:] if e[:2] != ("save", step)])
        argv = create if k == 0 else ["train", "--resume", str(run), "--no-progress"]
        code = child(argv, at, seed + k, log)
        resumed += k > 0
        if code != -signal.SIGKILL:
            return Chain(made, resumed, False, f"not killed at {at} (exit {code}): {tail(log)}")
        made += 1
        step = last_complete(ref.events, ref.events.index(at))
        if step is None:
            if (run / "state").exists() and (run / "state" / "trainer.json").is_file():
                return Chain(made, resumed, False, f"killed at {at}: a checkpoint appeared")
        else:
            where = checkpoint_module.checkpoint_dir(run)
            if where is None:
                return Chain(made, resumed, False, f"killed at {at}: no checkpoint left")
            if diff := same_state(ref.snapshots / str(step), where):
                return Chain(made, resumed, False, f"killed at {at}, step {step}: {diff}")
    argv = ["train", "--resume", str(run), "--no-progress"]
    code = fresh_process(argv, log) if fresh else child(argv, None, seed, log)
    resumed += 1
    if code != 0:
        return Chain(made, resumed, False, f"the last resume failed (exit {code}): {tail(log)}")
    diff = same_run(ref.run, run)
    return Chain(made, resumed, diff is None, diff)


def tail(log: Path, n: int = 600) -> str:
    return log.read_text()[-n:] if log.is_file() else ""


def uniform_points(rng: random.Random) -> Callable[[list[Event]], Event]:
    """Any event ahead, uniformly."""
    return rng.choice


def save_then_step_points(
    rng: random.Random, before: int | None = None
) -> Callable[[list[Event]], Event]:
    """An operation of a checkpoint write, then a step boundary, in turn (the suite's 2 kills);
    with `before`, only points before that step (training is then left to the last resume)."""
    calls = [0]

    def pick(ahead: list[Event]) -> Event:
        kind = ("save", "step")[calls[0] % 2]
        calls[0] += 1
        early = [e for e in ahead if before is None or e[1] < before]
        return rng.choice([e for e in early if e[0] == kind] or early or ahead)

    return pick
