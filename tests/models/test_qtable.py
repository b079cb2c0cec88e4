"""Tabular Q-learning (models/qtable.py): the update, and the refusal of a continuous state."""

from __future__ import annotations

import pytest
import torch

import genlab
from genlab.errors import GenlabError
from genlab.models.qtable import q_learning_update


def test_q_learning_update_bootstraps_unless_terminated():
    q = torch.tensor([[0.0, 0.0], [1.0, 3.0]])
    td = q_learning_update(q, 0, 1, 1.0, 1, False, alpha=0.5, gamma=0.9)
    assert td == pytest.approx(1.0 + 0.9 * 3.0) and q[0, 1] == pytest.approx(0.5 * td)
    q2 = torch.zeros(2, 2)
    assert q_learning_update(q2, 0, 0, 1.0, 1, True, 0.5, 0.9) == 1.0  # no max Q(s', .)


def test_qtable_refuses_a_continuous_state(tmp_path):
    with pytest.raises(GenlabError, match="cannot enumerate: train dqn"):
        genlab.create("qtable", tmp_path / "q", env="CartPole-v1")
    assert not (tmp_path / "q").exists()
