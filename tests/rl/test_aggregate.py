"""The interquartile mean and its bootstrap interval (genlab.rl.aggregate): against scipy's
trimmed mean, properties of the interval, and `genlab eval` of several agents' runs.
(bench/rliable_crosscheck.py compares both with rliable itself, in rliable's own venv.)"""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import TINY_OPTIONS, train_args
from scipy.stats import trim_mean

from genlab.cli import main
from genlab.rl.aggregate import bootstrap_interval, iqm


@pytest.mark.parametrize("m", [1, 3, 4, 5, 8, 10, 11, 40])
def test_iqm_is_scipys_trimmed_mean_with_a_quarter_cut_at_each_end(m):
    x = np.random.default_rng(m).normal(size=(m, 1)) * 100
    assert iqm(x) == pytest.approx(trim_mean(x, 0.25, axis=None), rel=1e-12)


def test_iqm_ignores_one_outlier_among_five_runs():
    scores = np.array([500.0, 498.0, 9.0, 500.0, 497.0])
    assert iqm(scores) == pytest.approx((498 + 500 + 497) / 3)
    assert np.mean(scores) < 401


def test_interval_is_seeded_contains_the_estimate_and_is_the_generic_path():
    scores = np.random.default_rng(0).normal(400, 50, size=10)
    a = bootstrap_interval(scores, reps=4000, seed=3)
    assert a == bootstrap_interval(scores, reps=4000, seed=3)
    assert a.low <= a.value <= a.high and a.value == iqm(scores)
    generic = bootstrap_interval(scores, lambda m: iqm(m), reps=4000, seed=3)
    assert generic == pytest.approx(a, rel=1e-12)  # the vectorised IQM computes the same


def test_interval_narrows_with_more_runs_and_is_a_point_for_equal_scores():
    rng = np.random.default_rng(1)
    few = bootstrap_interval(rng.normal(0, 1, size=10), reps=4000)
    many = bootstrap_interval(rng.normal(0, 1, size=640), reps=4000)
    assert (many.high - many.low) < 0.3 * (few.high - few.low)  # ~ 1 / sqrt(64)
    flat = bootstrap_interval(np.full(7, 475.0), reps=1000)
    assert flat == (475.0, 475.0, 475.0)


def test_several_agent_runs_are_scored_by_their_iqm(tmp_path, capsys):
    runs = []
    for seed in (0, 1, 2):
        run = tmp_path / f"dqn{seed}"
        args = train_args("dqn", [*TINY_OPTIONS["dqn"], "--max-steps", "20", "--no-progress"])
        assert main(["train", "dqn", *args, "--seed", str(seed), "--out", str(run)]) == 0
        runs.append(str(run))
    capsys.readouterr()
    out = tmp_path / "iqm.json"
    assert main(["eval", *runs, "--episodes", "2", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "IQM" in text and "95% CI" in text
    record = json.loads(out.read_text())
    assert record["runs"] == runs and len(record["scores"]) == 3
    assert record["iqm"] == pytest.approx(iqm(np.array(record["scores"])))
    low, high = record["iqm_ci"]
    assert min(record["scores"]) <= low <= record["iqm"] <= high <= max(record["scores"])
    for run in runs:  # each run's own record, as for one run
        assert (tmp_path / run / "eval" / "episodes-2.json").is_file()


def test_several_runs_that_are_not_agents_are_refused_in_one_line(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    code = main(["eval", str(tmp_path / "a"), str(tmp_path / "a"), "--episodes", "2"])
    assert code == 2
    assert capsys.readouterr().err.count("\n") == 1
