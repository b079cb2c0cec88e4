"""Deep Q-learning and tabular Q-learning: the Bellman target (Double DQN's argmax from the
online network, its value from the target network), n-step returns with termination and
truncation told apart, the dueling aggregation, the replay buffer (ring, seeded sampling,
priorities, save and load), exact resume, a tiny run that beats a random policy, and the
commands' output and errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import genlab
from genlab.cli import main
from genlab.errors import GenlabError
from genlab.models.dqn import (
    DQNConfig,
    QNetwork,
    bellman_target,
    dueling_q,
    epsilon_at,
    polyak_,
)
from genlab.models.qtable import q_learning_update
from genlab.rl.agent import evaluate_agent
from genlab.rl.env import EnvSpec, describe, episode_seed
from genlab.rl.episodes import Protocol, greedy_returns
from genlab.rl.replay import NStep, ReplayBuffer, Transition
from genlab.runs import load_weights

FAST = {"width": 32, "learning_starts": 100, "eval_every": 0, "batch_size": 32}


def obs(i: float) -> np.ndarray:
    return np.array([i], dtype=np.float32)


# ------------------------------------------------------------------------------ the maths


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


def test_q_learning_update_bootstraps_unless_terminated():
    q = torch.tensor([[0.0, 0.0], [1.0, 3.0]])
    td = q_learning_update(q, 0, 1, 1.0, 1, False, alpha=0.5, gamma=0.9)
    assert td == pytest.approx(1.0 + 0.9 * 3.0) and q[0, 1] == pytest.approx(0.5 * td)
    q2 = torch.zeros(2, 2)
    assert q_learning_update(q2, 0, 0, 1.0, 1, True, 0.5, 0.9) == 1.0  # no max Q(s', .)


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
    c = DQNConfig(eps_start=1.0, eps_end=0.1, eps_steps=100)
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


# ------------------------------------------------------------------------------ the buffer


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


# ------------------------------------------------------------------------------ environments


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


def test_qtable_refuses_a_continuous_state(tmp_path):
    with pytest.raises(GenlabError, match="cannot enumerate: train dqn"):
        genlab.create("qtable", tmp_path / "q", env="CartPole-v1")
    assert not (tmp_path / "q").exists()


def test_greedy_evaluation_is_seeded_and_batched():
    info = describe(EnvSpec("CartPole-v1"))
    always_left = lambda o: torch.zeros(len(o), dtype=torch.int64)  # noqa: E731
    a = greedy_returns(always_left, info, Protocol(5))
    assert np.array_equal(a, greedy_returns(always_left, info, Protocol(5)))
    assert (a < 20).all()  # pushing one way drops the pole within a few steps


# ------------------------------------------------------------------------------ training


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

    def poisoned(self, sample, target):
        calls["n"] += 1
        loss, td, logs = real(self, sample, target)
        return (loss * float("nan") if calls["n"] > 120 else loss), td, logs

    monkeypatch.setattr(QNetwork, "td_loss", poisoned)
    with pytest.raises(GenlabError, match="the TD loss became nan.*last good checkpoint"):
        genlab.train(run, progress=False)
    assert (
        json.loads((run / "state/trainer.json").read_text())["step"] == 200
    )  # update 121 is at step 339


# ------------------------------------------------------------------------------ commands


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
