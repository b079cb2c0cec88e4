"""The agents' commands (eval, play, plot, q-values, train dqn): their output and errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

import genlab
from genlab.cli import main


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    run = tmp_path_factory.mktemp("agents") / "dqn"
    assert main(["train", "dqn", "--out", str(run), "--max-steps", "400", "--width", "16",
                 "--learning-starts", "100", "--eval-every", "200", "--eval-episodes", "2",
                 "--no-progress"]) == 0  # fmt: skip
    return run


def test_eval_prints_and_writes_the_record(agent, tmp_path, capsys):
    out = tmp_path / "e.json"
    assert main(["eval", str(agent), "--episodes", "4", "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert {"mean", "std", "min", "max", "episodes", "returns", "protocol"} <= set(record)
    assert record["episodes"] == len(record["returns"]) == 4
    assert record["mean"] == pytest.approx(np.mean(record["returns"]))
    assert "seeds 1000000..1000003" in record["protocol"]
    assert "return mean" in capsys.readouterr().out
    assert main(["eval", str(agent), "--episodes", "0"]) == 2


def test_play_plot_and_q_values_write_pictures(agent, tmp_path, capsys):
    from PIL import Image

    gif = tmp_path / "agent.gif"
    assert main(["play", str(agent), "--episodes", "2", "--out", str(gif), "--width", "64"]) == 0
    assert Image.open(gif).n_frames > 2
    assert main(["plot", str(agent), "--out", str(tmp_path / "c.png")]) == 0
    assert main(["q-values", str(agent), "--out", str(tmp_path / "q.png"),
                 "--resolution", "9"]) == 0  # fmt: skip
    for name in ("c.png", "q.png"):
        assert Image.open(tmp_path / name).size[0] > 100
    assert main(["q-values", str(agent), "--dims", "1,1", "--out", str(tmp_path / "x.png")]) == 2
    assert main(["play", str(agent), "--episodes", "0"]) == 2
    capsys.readouterr()
    assert main(["sample", str(agent), "--out", str(tmp_path / "s.png")]) == 2
    assert "is an agent and draws no images: watch it with `genlab play" in capsys.readouterr().err


def test_agent_commands_refuse_other_runs(tmp_path, capsys):
    run = genlab.create("vae", tmp_path / "v", latent_dim=2, widths=(4, 8), max_steps=1)
    assert main(["play", str(run), "--out", str(tmp_path / "a.gif")]) == 2
    err = capsys.readouterr().err
    assert "a vae run, not an agent; give a run of dqn or qtable" in err
    assert err.count("\n") == 1 and not (tmp_path / "a.gif").exists()


def test_the_commands_errors_for_environments(tmp_path, capsys):
    for env, says in (("Nope-v0", "unknown environment"), ("Pendulum-v1", "Box actions")):
        assert main(["train", "dqn", "--env", env, "--out", str(tmp_path / "r")]) == 2
        err = capsys.readouterr().err
        assert says in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists()
    args = ["train", "dqn", "--eps-start", "0.1", "--eps-end", "0.5", "--out", str(tmp_path / "r")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--eps-end 0.5 must not exceed --eps-start 0.1" in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists()
