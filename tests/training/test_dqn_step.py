"""The agents' training step (training/dqn.py): a tiny run that beats a random policy, tabular
Q-learning on CliffWalking, exact resume, a non-finite TD loss, and stopping once solved."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

import genlab
import genlab.training.dqn as agent_steps
from genlab.errors import GenlabError
from genlab.evaluation.agent import evaluate_agent
from genlab.models.dqn import QNetwork, upgrade
from genlab.rl.env import EVAL_SEED, VALIDATION_SEED, EnvSpec, describe
from genlab.rl.episodes import Protocol, greedy_returns
from genlab.runs import Run, load_weights

FAST = {"width": 32, "learning_starts": 100, "eval_every": 0, "batch_size": 32}


def random_return(info, episodes=50) -> float:
    g = torch.Generator().manual_seed(0)
    policy = lambda o: torch.randint(info.n_actions, (len(o),), generator=g)  # noqa: E731
    return float(greedy_returns(policy, info, Protocol(episodes)).mean())


def test_a_tiny_dqn_beats_a_random_policy_on_cartpole(tmp_path):
    run = genlab.create("dqn", tmp_path / "d", max_steps=4_000, eps_steps=2_000, train_every=1,
                        **FAST)  # fmt: skip
    genlab.train(run, progress=False)
    record, _ = evaluate_agent(run, episodes=20)
    baseline = random_return(describe(EnvSpec("CartPole-v1")))
    assert baseline < 30 and record["mean"] > 3 * baseline, (record["mean"], baseline)


def test_qtable_learns_cliffwalking(tmp_path):
    run = genlab.create("qtable", tmp_path / "q", env="CliffWalking-v1", max_steps=20_000,
                        eps_steps=10_000, eval_every=0, alpha=0.5)  # fmt: skip
    genlab.train(run, progress=False)
    record, _ = evaluate_agent(run, episodes=5)
    assert record["mean"] == -13.0  # the shortest path along the cliff


@pytest.mark.parametrize("family,options", [
    ("dqn", {**FAST, "eval_every": 300, "eval_episodes": 2, "n_step": 3, "prioritized": True}),
    ("dqn", {**FAST, "env": "FrozenLake-v1", "dueling": True, "n_step": 1}),
    ("dqn", {**FAST, "env": "MinAtar/Breakout-v1", "width": 16, "depth": 1, "channels": 4}),
    ("qtable", {"env": "FrozenLake-v1", "eval_every": 300, "eval_episodes": 3}),
])  # fmt: skip
@pytest.mark.kernels
def test_resume_equals_the_uninterrupted_run(family, options, tmp_path):
    whole = genlab.create(family, tmp_path / "whole", max_steps=900, checkpoint_every=10**6,
                          **options)  # fmt: skip
    genlab.train(whole, progress=False)
    split = genlab.create(family, tmp_path / "split", max_steps=900, checkpoint_every=10**6,
                          **options)  # fmt: skip
    assert genlab.train(split, stop_at=433, progress=False).stopped_by == "stop_at"
    assert genlab.train(split, progress=False).step == 900
    for name in ("model.safetensors", "state/optimizer.safetensors"):
        a, b = load_weights(whole / name), load_weights(split / name)
        assert a.keys() == b.keys(), name
        for key in a:
            assert torch.equal(a[key], b[key]), (name, key)
    ta, tb = (json.loads((r / "state/trainer.json").read_text()) for r in (whole, split))
    assert ta["episode"] == tb["episode"] and ta.get("buffer") == tb.get("buffer")
    rows = [(r / "metrics.csv").read_text().splitlines() for r in (whole, split)]
    columns = rows[0][0].split(",")
    keep = [i for i, c in enumerate(columns) if c not in ("steps_per_s", "elapsed_s", "eval_s")]
    strip = lambda lines: [[line.split(",")[i] for i in keep] for line in lines]  # noqa: E731
    assert strip(rows[0]) == strip(rows[1])


def test_a_non_finite_loss_stops_with_the_last_good_checkpoint(tmp_path, monkeypatch):
    run = genlab.create("dqn", tmp_path / "d", max_steps=600, checkpoint_every=200, **FAST)
    real = QNetwork.td_loss
    calls = {"n": 0}

    def poisoned(self, sample, target, double):
        calls["n"] += 1
        loss, td, logs = real(self, sample, target, double)
        return (loss * float("nan") if calls["n"] > 120 else loss), td, logs

    monkeypatch.setattr(QNetwork, "td_loss", poisoned)
    with pytest.raises(GenlabError, match="the TD loss became nan.*last good checkpoint"):
        genlab.train(run, progress=False)
    assert (
        json.loads((run / "state/trainer.json").read_text())["step"] == 200
    )  # update 121 is at step 339


def test_a_run_with_the_agent_settings_in_its_model_config_still_trains(tmp_path):
    """Runs made before the agent's settings moved to config.json's "agent" (all of them in
    "model") load as today's and resume bit for bit."""
    options = {**FAST, "eval_every": 100, "eval_episodes": 2, "stop_when_solved": False}
    now = genlab.create("dqn", tmp_path / "now", max_steps=300, checkpoint_every=150, **options)
    genlab.train(now, stop_at=150, progress=False)
    before = tmp_path / "before"
    shutil.copytree(now, before)
    config = json.loads((before / "config.json").read_text())
    config["model"].update(config.pop("agent"))  # the layout of genlab before the split
    (before / "config.json").write_text(json.dumps(config))
    a, b = Run.open(now), Run.open(before)
    assert (a.model_config, a.config["agent"]) == (b.model_config, b.config["agent"])
    for run in (now, before):
        genlab.train(run, progress=False)
    assert torch.equal(load_weights(now / "model.safetensors")["head.weight"],
                       load_weights(before / "model.safetensors")["head.weight"])  # fmt: skip


# ------------------------------------------------------------------------------ stop when solved

SOLVABLE = {**FAST, "eval_every": 300, "eval_episodes": 3, "solved_episodes": 4}


def trainer_state(run) -> dict:
    return json.loads((run / "state/trainer.json").read_text())


def test_the_environments_reward_threshold_is_the_default_solved_return():
    assert describe(EnvSpec("CartPole-v1")).reward_threshold == 475.0
    assert describe(EnvSpec("MinAtar/Breakout-v1")).reward_threshold is None
    validation = Protocol(100, first_seed=VALIDATION_SEED)
    assert validation.first_seed >= EVAL_SEED + 100_000  # apart from any evaluation episodes


def test_a_solved_agent_stops_at_the_confirming_evaluation_and_stays_stopped(tmp_path):
    # every CartPole episode returns at least 1: solved at the first evaluation
    run = genlab.create("dqn", tmp_path / "d", max_steps=2_000, solved_return=1.0, **SOLVABLE)
    result = genlab.train(run, progress=False)
    assert (result.stopped_by, result.step) == ("solved", 300)
    assert "solved at step 300" in result.detail and "4 validation episodes" in result.detail
    solved = trainer_state(run)["solved"]
    assert (solved["step"], solved["target"], solved["source"]) == (300, 1.0, "--solved-return")
    assert solved["validation_return"] >= 1.0 and solved["eval_return"] >= 1.0
    rows = (run / "metrics.csv").read_text().splitlines()
    assert rows[-1].split(",")[0] == "300"  # the partial window ending at the stop is logged
    weights = load_weights(run / "model.safetensors")
    again = genlab.train(run, max_steps=5_000, progress=False)  # resumed: stops at once
    assert (again.stopped_by, again.step) == ("solved", 300)
    assert (run / "metrics.csv").read_text().splitlines() == rows
    after = load_weights(run / "model.safetensors")
    assert all(torch.equal(weights[k], after[k]) for k in weights)


def test_the_validation_episodes_must_confirm_the_evaluation(tmp_path, monkeypatch):
    real = agent_steps.greedy_returns
    seen = []

    def failing_validation(policy, info, protocol, generator=None):
        seen.append(protocol.first_seed)
        returns = real(policy, info, protocol, generator)
        return returns * 0 if protocol.first_seed == VALIDATION_SEED else returns

    monkeypatch.setattr(agent_steps, "greedy_returns", failing_validation)
    run = genlab.create("dqn", tmp_path / "d", max_steps=900, solved_return=1.0, **SOLVABLE)
    result = genlab.train(run, progress=False)
    assert (result.stopped_by, result.step) == ("max_steps", 900)
    assert trainer_state(run)["solved"] is None
    assert seen == [EVAL_SEED, VALIDATION_SEED] * 3  # each evaluation reached it; none confirmed


@pytest.mark.parametrize("options", [{"solved_return": 10**6}, {"stop_when_solved": False,
                                                                "solved_return": 1.0}])  # fmt: skip
def test_an_unreached_or_disabled_target_trains_the_whole_budget(options, tmp_path):
    run = genlab.create("dqn", tmp_path / "d", max_steps=600, **{**SOLVABLE, **options})
    result = genlab.train(run, progress=False)
    assert (result.stopped_by, result.step, result.detail) == ("max_steps", 600, "")
    assert trainer_state(run)["solved"] is None


def test_runs_made_before_the_stop_train_their_whole_budget_as_created():
    old = {"family": "dqn", "model": {"width": 8}, "agent": {"n_step": 3}}
    assert upgrade(old)["agent"] == {"n_step": 3, "stop_when_solved": False}
    now = {"family": "dqn", "model": {}, "agent": {"stop_when_solved": True}}
    assert upgrade(now) == now
