"""The replay buffer (rl/replay.py): n-step returns with termination and truncation told apart,
the ring, seeded sampling, priorities, save and load."""

from __future__ import annotations

import numpy as np
import torch

from genlab.rl.replay import NStep, ReplayBuffer, Transition


def obs(i: float) -> np.ndarray:
    return np.array([i], dtype=np.float32)


def test_n_step_returns_bootstrap_after_truncation_but_not_after_termination():
    g = 0.5
    nstep = NStep(3, g)
    out = []
    for t, r in enumerate([1.0, 2.0, 4.0, 8.0]):
        out += nstep.push(obs(t), t % 2, r, obs(t + 1), False, False)
    assert [(o.obs[0], o.reward, o.discount, o.next_obs[0]) for o in out] == [
        (0.0, 1 + g * 2 + g * g * 4, g**3, 3.0),
        (1.0, 2 + g * 4 + g * g * 8, g**3, 4.0),
    ]
    ended = nstep.push(obs(4), 0, 16.0, obs(5), True, False)  # termination: no bootstrap
    assert [(o.obs[0], o.reward, o.discount, o.next_obs[0]) for o in ended] == [
        (2.0, 4 + g * 8 + g * g * 16, 0.0, 5.0),
        (3.0, 8 + g * 16, 0.0, 5.0),
        (4.0, 16.0, 0.0, 5.0),
    ]
    assert nstep.push(obs(10), 1, 1.0, obs(11), False, False) == []
    cut = nstep.push(obs(11), 1, 2.0, obs(12), False, True)  # time limit: bootstrap from s'
    assert [(o.obs[0], o.reward, o.discount, o.next_obs[0]) for o in cut] == [
        (10.0, 1 + g * 2, g**2, 12.0),
        (11.0, 2.0, g, 12.0),
    ]


def test_one_step_n_is_the_plain_transition():
    nstep = NStep(1, 0.9)
    (t,) = nstep.push(obs(0), 1, 3.0, obs(1), False, False)
    assert (t.reward, t.discount, t.action) == (3.0, 0.9, 1)


def transition(i: int) -> Transition:
    return Transition(obs(i), i % 2, float(i), 0.9, obs(i + 1))


def test_the_replay_buffer_is_a_ring_and_saves_and_loads():
    buf = ReplayBuffer(3, (1,), np.float32)
    for i in range(5):
        buf.add(transition(i))
    assert len(buf) == 3 and buf.pos == 2
    assert sorted(buf.reward.tolist()) == [2.0, 3.0, 4.0]  # 0 and 1 overwritten
    tensors, meta = buf.state()
    again = ReplayBuffer(3, (1,), np.float32)
    again.load(tensors, meta)
    for name in ("obs", "next_obs", "action", "reward", "discount"):
        assert np.array_equal(getattr(buf, name), getattr(again, name))
    assert (again.pos, again.size) == (2, 3)
    again.add(transition(5))
    assert again.reward[2] == 5.0  # the oldest (2) goes next


def test_sampling_is_seeded():
    buf = ReplayBuffer(100, (1,), np.float32)
    for i in range(50):
        buf.add(transition(i))
    a = buf.sample(16, torch.Generator().manual_seed(3))
    b = buf.sample(16, torch.Generator().manual_seed(3))
    c = buf.sample(16, torch.Generator().manual_seed(4))
    assert torch.equal(a.index, b.index) and not torch.equal(a.index, c.index)
    assert torch.equal(a.reward, a.index.float())  # rows stay together
    assert a.index.max() < 50


def test_prioritized_sampling_follows_the_priorities_and_weights_correct_for_it():
    buf = ReplayBuffer(4, (1,), np.float32, prioritized=True, alpha=1.0, eps=0.0)
    for i in range(4):
        buf.add(transition(i))
    buf.update_priorities(torch.arange(4), torch.tensor([1.0, 1.0, 2.0, 4.0]))
    s = buf.sample(40_000, torch.Generator().manual_seed(0), beta=1.0)
    freq = torch.bincount(s.index, minlength=4).float() / 40_000
    assert torch.allclose(freq, torch.tensor([1, 1, 2, 4]) / 8, atol=0.01)
    # beta = 1: w_i = (N P(i))^-1 normalised by the largest, here P = 1/8
    expected = (4 * torch.tensor([1, 1, 2, 4]) / 8) ** -1.0 / (4 / 8) ** -1.0
    assert torch.allclose(s.weights[:8], expected[s.index[:8]])
    buf.add(transition(9))  # new transitions get the largest priority so far
    assert buf.priority[0] == 4.0
