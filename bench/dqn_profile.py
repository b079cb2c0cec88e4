"""Where a DQN step's time goes on this machine, and whether gymnasium's vector API would pay:
the environment step, the epsilon-greedy action (one forward pass), one gradient update of the
default network (batch 128), and environment steps per second for 1 environment against
SyncVectorEnv of 4 and 8 (per environment step, actions batched).

    python bench/dqn_profile.py --env CartPole-v1
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from genlab.models.dqn import DQNConfig, QNetwork
from genlab.rl.env import EnvSpec, describe, make_env, observation_array
from genlab.rl.replay import ReplayBuffer, Transition


def per_call(fn, n: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    info = describe(EnvSpec(args.env))
    env = make_env(args.env)
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)

    def env_step():
        nonlocal obs
        obs, _, terminated, truncated, _ = env.step(int(rng.integers(info.n_actions)))
        if terminated or truncated:
            obs, _ = env.reset()

    config = DQNConfig(observation_shape=info.observation_shape, n_actions=info.n_actions)
    net, target = QNetwork(config), QNetwork(config)
    x = torch.from_numpy(observation_array(obs, info)[None])
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, fused=True)
    buf = ReplayBuffer(10_000, info.observation_shape, np.float32)
    o = observation_array(obs, info)
    for i in range(10_000):
        buf.add(Transition(o, i % info.n_actions, 1.0, 0.99, o))
    g = torch.Generator().manual_seed(0)

    def update():
        s = buf.sample(128, g)
        loss, _, _ = net.td_loss(s, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 10.0)
        opt.step()

    rows = {
        "environment step": per_call(env_step, args.n),
        "action (one forward pass)": per_call(lambda: net.act(x), args.n),
        "gradient update, batch 128": per_call(update, args.n // 4),
    }
    per_step = rows["environment step"] + rows["action (one forward pass)"]
    per_step += rows["gradient update, batch 128"] / config.train_every
    print(f"{args.env}, torch threads {torch.get_num_threads()}: microseconds per call")
    for name, us in rows.items():
        print(f"  {name:32s} {us:8.1f}")
    print(f"  one training step (update every {config.train_every}) {per_step:8.1f}"
          f"  -> {1e6 / per_step:.0f} steps/s")  # fmt: skip
    import gymnasium as gym

    for k in (1, 4, 8):
        vec = gym.vector.SyncVectorEnv([lambda: make_env(args.env) for _ in range(k)])
        vec.reset(seed=0)
        acts = np.zeros(k, dtype=np.int64)
        us = per_call(lambda vec=vec, acts=acts: vec.step(acts), args.n // k)
        print(f"  SyncVectorEnv x{k}: {us / k:6.1f} us per environment step")
        vec.close()


if __name__ == "__main__":
    main()
