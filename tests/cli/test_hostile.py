"""Every command with hostile input: numbers out of range (negative, zero, huge), NaN, infinity
and words for numbers; a missing run, a folder or file that is not a run, a run of a family the
command does not serve; a file that is not an image. Each is refused by the parser or the
library with one line and exit code 2, never a traceback, and leaves no file behind."""

from __future__ import annotations

import math
import os
from pathlib import Path

import click
import pytest
from helpers import TINY_OPTIONS, train_args

from genlab.cli import cli, main
from genlab.cli.common import OptionType

TINY = ["--max-steps", "2", "--batch-size", "16", "--no-progress", "--sample-every", "1000"]
RUNS = {
    f: TINY_OPTIONS[f]
    for f in ("vae", "gan", "stylegan", "cyclegan", "ddpm", "noisy-classifier", "pixelcnn", "dqn")
}
FAST = {  # keep the commands that do apply quick
    "eval": ["--n", "16", "--no-references", "--no-progress", "--episodes", "3"],
    "compare": ["--n", "16", "--no-progress"],
    "denoise": ["--frames", "2", "--n", "2"],
    "guidance": ["--scales", "0,1", "--columns", "2"],
    "sample": ["--n", "4"],
    "txt2img": ["--n", "2"],
    "latent-map": ["--n", "50"],
    "nll": ["--k", "2", "--n", "8", "--draws", "1"],
    "complete": ["--n", "2", "--samples", "1"],
    "pixel-order": ["--n", "2", "--frames", "2"],
    "ar-blur": ["--n", "2"],
    "play": ["--episodes", "1", "--width", "32"],
    "q-values": ["--resolution", "5"],
    "path-length": ["--n", "4"],
    "noise-variation": ["--draws", "2", "--n", "1"],
}


def leaf_commands(group: click.Group, path: tuple[str, ...] = ()):
    """Every command, groups included (`genlab train` has options of its own)."""
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from leaf_commands(command, (*path, name))


COMMANDS = dict(leaf_commands(cli))


def hostile_values(option) -> list[str]:
    """Values outside an option's declared range, and things that are not numbers."""
    o = option.type.option
    values = ["nan", "inf", "abc", ""]
    if o.min is not None:
        values.append(str(o.min) if o.min_open else str(math.floor(o.min) - 1))
    if o.max is not None:
        values.append(str(int(o.max * 10 + 1) if o.kind in ("int", "ints") else o.max * 10 + 1))
    if o.kind in ("ints", "floats"):
        values = [f"1,{v}" for v in values if v] + ["1;2"]
    return values


def numeric_options():
    for path, command in COMMANDS.items():
        for param in command.params:
            if isinstance(param.type, OptionType) and param.type.option.kind in (
                "int", "float", "ints", "floats"
            ):  # fmt: skip
                yield path, param


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")}


def assert_refused(argv: list[str], capsys, folder: Path) -> str:
    before = files_under(folder)
    assert main(argv) == 2, argv
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, (argv, err)
    assert files_under(folder) == before, argv
    return err


def test_every_command_was_found():
    names = {" ".join(p) for p in COMMANDS}
    assert {"train vae", "train cyclegan", "sample", "eval", "sd txt2img", "data fetch"} <= names
    assert len(list(numeric_options())) > 200


@pytest.mark.parametrize(
    "path", sorted({p for p, _ in numeric_options()}), ids=lambda p: "-".join(p)
)
def test_numbers_out_of_range_are_refused_by_the_parser(path, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for p, param in numeric_options():
        if p != path:
            continue
        flag = param.opts[0]
        for value in hostile_values(param):
            err = assert_refused([*path, flag, value], capsys, tmp_path)
            assert flag in err or param.type.option.flag in err, (path, flag, value, err)


@pytest.fixture(scope="module")
def runs(fmnist_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    made = {}
    for family, options in RUNS.items():
        out = root / family
        args = train_args(family, ["--data-dir", str(fmnist_dir), *TINY, *options])
        assert main(["train", family, *args, "--out", str(out)]) == 0
        made[family] = out
    return made


RUN_COMMANDS = sorted(
    " ".join(p) for p, c in COMMANDS.items() if any(x.name in ("run", "runs") for x in c.params)
)


@pytest.mark.parametrize("name", RUN_COMMANDS)
def test_missing_foreign_and_wrong_runs(name, runs, fmnist_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = name.split()
    command = COMMANDS[tuple(path)]
    extra = list(FAST.get(name, []))
    if any(p.name == "prompt" and isinstance(p, click.Argument) for p in command.params):
        extra.insert(0, "a pair of boots")
    if name == "translate":
        extra += ["--images", str(tmp_path), "--out", str(tmp_path / "translated")]
    (tmp_path / "not-a-run").mkdir()
    for bad in ("/nonexistent/run", str(tmp_path / "not-a-run"), "/etc/passwd"):
        assert_refused([*path, bad, *extra], capsys, tmp_path)
    if name == "board":  # a server: it serves any run's events until Ctrl-C (tests/test_board.py)
        return
    for family, run in runs.items():  # each run: served (exit 0) or refused in one line
        code = main([*path, str(run), *extra])
        err = capsys.readouterr().err.strip()
        assert code in (0, 2), (name, family, code, err)
        if code == 2:
            assert err.startswith("error: ") and "\n" not in err, (name, family, err)


def test_files_that_are_not_images(tmp_path, capsys, runs, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    assert "not a readable image" in assert_refused(["eval", "--images", "/etc/passwd"], capsys,
                                                    tmp_path)  # fmt: skip
    assert "not a readable image" in assert_refused(["eval", "--images", str(text)], capsys,
                                                    tmp_path)  # fmt: skip
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a.png").write_text("nope")
    args = ["translate", str(runs["cyclegan"]), "--images", str(folder), "--out", "t"]
    assert_refused(args, capsys, tmp_path)


def test_the_train_budget_is_checked_before_anything_is_written(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for value in ("-1", "0", "nan", "1e9"):
        assert_refused(["train", "vae", "--max-minutes", value, "--out", "R"], capsys, tmp_path)
    assert not os.path.exists(tmp_path / "R")
