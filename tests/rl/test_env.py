"""Environments (rl/env.py): pure episode seeds, and one-line errors for environments genlab
cannot use."""

from __future__ import annotations

import pytest

from genlab.errors import GenlabError
from genlab.rl.env import EnvSpec, describe, episode_seed


def test_episode_seeds_are_pure_and_apart_from_evaluation_seeds():
    assert episode_seed(0, 5) == episode_seed(0, 5) != episode_seed(1, 5)
    assert all(10**7 <= episode_seed(s, e) < 2**31 for s in range(3) for e in range(50))


def test_environment_errors_are_one_line(monkeypatch):
    with pytest.raises(GenlabError, match="unknown environment 'CartPol-v1'"):
        describe(EnvSpec("CartPol-v1"))
    with pytest.raises(GenlabError, match="Pendulum-v1 has Box actions"):
        describe(EnvSpec("Pendulum-v1"))
    monkeypatch.setitem(__import__("sys").modules, "minatar.gym", None)
    with pytest.raises(GenlabError, match="pip install minatar"):
        describe(EnvSpec("MinAtar/Breakout-v1"))
