"""TensorBoard event files: every run's metrics.csv rows as scalars (read back with
TensorBoard's own reader, also after a kill and a resume), its sample grids, eval records as
hparams, `--no-tensorboard`, and `genlab board` serving them on 127.0.0.1.

(tests/test_families.py checks every family's events against its metrics.csv; the kill tests
of tests/training/test_faults.py check them after each chain of kills.)
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request

import pytest
from fault_injection import child
from helpers import TINY_OPTIONS, board_scalars, csv_scalars, train_args

from genlab.cli import main

TINY = ["--batch-size", "16", "--no-progress", *TINY_OPTIONS["vae"]]


def test_a_killed_and_resumed_run_has_the_events_of_its_metrics(fmnist_dir, tmp_path):
    run = tmp_path / "run"
    argv = ["train", "vae", "--data-dir", str(fmnist_dir), "--out", str(run), *TINY,
            "--max-steps", "9", "--log-every", "1", "--checkpoint-every", "4",
            "--sample-every", "3"]  # fmt: skip
    # killed at the step boundary after step 6: rows 5 and 6 were logged after the checkpoint
    assert child(argv, ("step", 6), 0, tmp_path / "log") < 0
    assert len(csv_scalars(run)["loss"]) == 6
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    events, rows = board_scalars(run), csv_scalars(run)
    assert [s for s, _ in rows["loss"]] == list(range(1, 10))
    assert events == rows  # the rows logged after the checkpoint were purged, then relogged
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0})
    acc.Reload()
    grids = acc.Images("samples")
    assert [g.step for g in grids] == [3, 6, 9] and grids[0].width == grids[0].height > 28


def test_no_tensorboard_writes_no_events_and_is_recorded(fmnist_dir, tmp_path):
    run = tmp_path / "run"
    argv = ["train", "vae", "--data-dir", str(fmnist_dir), "--out", str(run), *TINY]
    assert main([*argv, "--max-steps", "2", "--no-tensorboard"]) == 0
    assert not (run / "tensorboard").exists()
    assert json.loads((run / "config.json").read_text())["train"]["tensorboard"] is False
    common = ["--n", "12", "--data-dir", str(fmnist_dir), "--no-references", "--no-progress"]
    assert main(["eval", str(run), *common]) == 0
    assert not (run / "tensorboard").exists()  # nor its eval records


def test_eval_records_become_hparams_with_their_metrics(fmnist_dir, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    argv = ["train", "vae", "--data-dir", str(fmnist_dir), "--out", str(run), *TINY]
    assert main([*argv, "--max-steps", "2"]) == 0
    common = ["--n", "12", "--data-dir", str(fmnist_dir), "--no-references", "--no-progress"]
    assert main(["eval", str(run), *common]) == 0
    record = json.loads((run / "eval" / "eval-n12-seed0.json").read_text())
    acc = EventAccumulator(str(run / "tensorboard" / "eval-n12-seed0"), size_guidance={})
    acc.Reload()
    assert acc.PluginTagToContent("hparams")  # the hparams plugin's session records
    fd = acc.Scalars("eval/fd")
    assert len(fd) == 1 and fd[0].step == 2
    assert fd[0].value == pytest.approx(record["metrics"]["fd"], rel=1e-6)


def test_an_agents_eval_record_becomes_hparams(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "dqn"
    args = train_args("dqn", [*TINY_OPTIONS["dqn"], "--max-steps", "20", "--no-progress"])
    assert main(["train", "dqn", *args, "--out", str(run)]) == 0
    assert main(["eval", str(run), "--episodes", "2"]) == 0
    record = json.loads((run / "eval" / "episodes-2.json").read_text())
    acc = EventAccumulator(str(run / "tensorboard" / "episodes-2"), size_guidance={})
    acc.Reload()
    assert acc.Scalars("eval/mean")[0].value == pytest.approx(record["mean"], rel=1e-6)
    assert board_scalars(run) == csv_scalars(run)


def test_board_serves_the_runs_on_localhost(fmnist_dir, tmp_path):
    runs = tmp_path / "runs"
    argv = ["train", "vae", "--data-dir", str(fmnist_dir), "--out", str(runs / "a"), *TINY]
    assert main([*argv, "--max-steps", "2"]) == 0
    command = [sys.executable, "-m", "genlab", "board", str(runs), "--port", "0"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, url = time.monotonic() + 60, None
        while url is None and time.monotonic() < deadline:
            line = server.stdout.readline()
            assert line or server.poll() is None, "genlab board exited"
            found = re.search(r"at (http://127\.0\.0\.1:\d+/)", line)
            url = found and found.group(1)
        assert url, "no URL printed"
        names = json.loads(urllib.request.urlopen(url + "data/runs", timeout=30).read())
        assert names == ["a/tensorboard"]
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_board_refuses_a_folder_without_events(tmp_path, capsys):
    assert main(["board", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no TensorBoard event files" in err and "Traceback" not in err
    assert main(["board", str(tmp_path / "missing")]) == 2


def test_runs_dir_default_is_named_in_help(capsys):
    assert main(["board", "--help"]) == 0
    assert "127.0.0.1" in capsys.readouterr().out
