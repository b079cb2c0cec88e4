"""Running an agent's greedy policy: seeded evaluation episodes (batched: one forward pass per
time step for all episodes still running) and rendered episodes for `genlab play`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch

from genlab.rl.env import EVAL_SEED, EnvInfo, make_env, observation_array

Policy = Callable[[torch.Tensor], torch.Tensor]
"""A batch of observations -> a batch of actions (a model's `act`)."""


class Protocol(NamedTuple):
    """How greedy returns are measured (recorded next to them)."""

    episodes: int
    epsilon: float = 0.0
    first_seed: int = EVAL_SEED

    def describe(self) -> str:
        last = self.first_seed + self.episodes - 1
        policy = "greedy policy" if self.epsilon == 0 else "epsilon-greedy policy"
        if self.epsilon == 1:
            policy = "random policy"
        return (
            f"{policy} (epsilon {self.epsilon:g}), {self.episodes} episodes reset with seeds "
            f"{self.first_seed}..{last}, in environments separate from training"
        )


def greedy_returns(
    policy: Policy, info: EnvInfo, protocol: Protocol, generator: torch.Generator | None = None
) -> np.ndarray:
    """The undiscounted return of each evaluation episode (episode i resets with seed
    first_seed + i); all episodes run side by side. With epsilon > 0 a random action replaces
    the greedy one with that probability (drawn from `generator`)."""
    envs = [make_env(info.spec.env) for _ in range(protocol.episodes)]
    obs = [observation_array(e.reset(seed=protocol.first_seed + i)[0], info)
           for i, e in enumerate(envs)]  # fmt: skip
    returns = np.zeros(protocol.episodes)
    active = list(range(protocol.episodes))
    g = generator or torch.Generator().manual_seed(0)
    while active:
        actions = policy(torch.from_numpy(np.stack([obs[i] for i in active]))).tolist()
        if protocol.epsilon > 0:
            explore = torch.rand(len(active), generator=g) < protocol.epsilon
            random = torch.randint(info.n_actions, (len(active),), generator=g)
            actions = torch.where(explore, random, torch.tensor(actions)).tolist()
        still = []
        for i, a in zip(active, actions, strict=True):
            o, r, terminated, truncated, _ = envs[i].step(a)
            returns[i] += float(r)
            if terminated or truncated:
                envs[i].close()
            else:
                obs[i] = observation_array(o, info)
                still.append(i)
        active = still
    return returns


def summary(returns: np.ndarray, protocol: Protocol) -> dict[str, Any]:
    """The record of `genlab eval` for an agent: mean, std, min, max, episodes, returns and the
    protocol in words."""
    return {
        "mean": float(returns.mean()),
        "std": float(returns.std()),
        "min": float(returns.min()),
        "max": float(returns.max()),
        "episodes": int(len(returns)),
        "returns": [float(r) for r in returns],
        "protocol": protocol.describe(),
    }


def rendered_episodes(
    policy: Policy, info: EnvInfo, episodes: int, first_seed: int = EVAL_SEED, every: int = 1
) -> tuple[list[np.ndarray], list[float]]:
    """RGB frames (H, W, 3) uint8 of greedy episodes one after another (every `every`-th
    frame, and each episode's last), and each episode's return."""
    env = make_env(info.spec.env, render_mode="rgb_array")
    frames, returns = [], []
    try:
        for k in range(episodes):
            o, _ = env.reset(seed=first_seed + k)
            total, t, done = 0.0, 0, False
            while not done:
                if t % every == 0:
                    frames.append(_rgb(env.render()))
                a = int(policy(torch.from_numpy(observation_array(o, info)[None]))[0])
                o, r, terminated, truncated, _ = env.step(a)
                total, t, done = total + float(r), t + 1, terminated or truncated
            frames.append(_rgb(env.render()))
            returns.append(total)
    finally:
        env.close()
    return frames, returns


def _rgb(frame: Any) -> np.ndarray:
    """A rendered frame as uint8 RGB (MinAtar renders floats in [0, 1])."""
    a = np.asarray(frame)
    if a.dtype != np.uint8:
        a = (np.clip(a, 0.0, 1.0) * 255).round().astype(np.uint8)
    return a
