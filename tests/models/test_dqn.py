"""The Q-network (models/dqn.py): the Bellman target (Double DQN's argmax from the online
network, its value from the target network), the TD loss, the dueling aggregation, the
exploration schedule, target updates, and the networks for states, vectors and frames."""

from __future__ import annotations

import pytest
import torch

from genlab.models.dqn import (
    AgentConfig,
    DQNConfig,
    QNetwork,
    bellman_target,
    dueling_q,
    epsilon_at,
    polyak_,
)


def test_double_dqn_takes_the_argmax_from_the_online_net_and_the_value_from_the_target():
    online = torch.tensor([[1.0, 5.0, 2.0], [0.0, -1.0, 3.0]])
    target = torch.tensor([[10.0, 20.0, 30.0], [7.0, 8.0, 9.0]])
    reward, discount = torch.tensor([1.0, 2.0]), torch.tensor([0.5, 0.0])
    double = bellman_target(reward, discount, online, target, double=True)
    assert torch.allclose(double, torch.tensor([1.0 + 0.5 * 20.0, 2.0]))  # online argmax 1, 2
    plain = bellman_target(reward, discount, online, target, double=False)
    assert torch.allclose(plain, torch.tensor([1.0 + 0.5 * 30.0, 2.0]))  # max of the target


def test_the_td_loss_uses_the_target_network_and_weights_by_importance():
    torch.manual_seed(0)
    config = DQNConfig(observation_shape=(3,), n_actions=2, width=8)
    net, target = QNetwork(config), QNetwork(config)
    s, s2 = torch.randn(5, 3), torch.randn(5, 3)
    a = torch.tensor([0, 1, 1, 0, 1])
    r, d = torch.randn(5), torch.tensor([0.9, 0.0, 0.81, 0.9, 0.5])
    w = torch.tensor([1.0, 0.5, 2.0, 1.0, 0.1])
    sample = type("S", (), dict(obs=s, action=a, reward=r, discount=d, next_obs=s2, weights=w))
    loss, td, _ = net.td_loss(sample, target)
    with torch.no_grad():
        best = net(s2).argmax(1, keepdim=True)
        y = r + d * target(s2).gather(1, best).squeeze(1)
    q = net(s).gather(1, a[:, None]).squeeze(1)
    expected = (w * torch.nn.functional.huber_loss(q, y, reduction="none")).mean()
    assert torch.allclose(loss, expected) and torch.allclose(td, y - q.detach())


def test_dueling_aggregation():
    v, adv = torch.tensor([[2.0], [-1.0]]), torch.tensor([[1.0, 3.0, 5.0], [0.0, 0.0, 3.0]])
    q = dueling_q(v, adv)
    assert torch.allclose(q, torch.tensor([[0.0, 2.0, 4.0], [-2.0, -2.0, 1.0]]))
    assert torch.allclose(q.mean(1, keepdim=True), v)  # V is the mean of Q over actions
    net = QNetwork(DQNConfig(observation_shape=(4,), n_actions=3, width=8, dueling=True))
    x = torch.randn(6, 4)
    h = net.body(x)
    assert torch.allclose(net(x), dueling_q(net.value(h), net.advantage(h)))


def test_epsilon_decays_linearly_then_stays():
    c = AgentConfig(eps_start=1.0, eps_end=0.1, eps_steps=100)
    assert [epsilon_at(s, c) for s in (0, 50, 100, 10_000)] == pytest.approx([1, 0.55, 0.1, 0.1])


def test_polyak_and_hard_target_updates():
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    wa, wb = a.weight.detach().clone(), b.weight.detach().clone()
    polyak_(a, b, 0.25)
    assert torch.allclose(a.weight, 0.75 * wa + 0.25 * wb)
    polyak_(a, b, 1.0)
    assert torch.equal(a.weight, b.weight)


def test_networks_for_states_vectors_and_frames():
    onehot = QNetwork(DQNConfig(observation_shape=(), n_states=16, n_actions=4, width=8))
    assert onehot(torch.tensor([0, 15])).shape == (2, 4)
    conv = QNetwork(DQNConfig(observation_shape=(10, 10, 4), n_actions=3, width=8, channels=4))
    assert conv(torch.zeros(2, 10, 10, 4, dtype=torch.uint8)).shape == (2, 3)
