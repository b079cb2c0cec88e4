"""The peer: Stable-Baselines3's DQN with the rl-baselines3-zoo hyperparameters, evaluated with
genlab's protocol (greedy, episodes reset with seeds 1,000,000 + i, separate environments) every
`--eval-every` steps; prints the same per-seed lines as bench/dqn_cartpole.py. After training,
`--final-episodes` (100) greedy episodes give each seed's final return, the score whose IQM
bench/iqm.py computes. `--stop-when-solved` adds SB3's own early stop (EvalCallback with
StopTrainingOnRewardThreshold at the environment's reward threshold, 20 episodes every 2,500
steps on validation seeds 2,000,000 + i), the counterpart of genlab's default.

Runs in its own environment (not genlab's):

    python -m venv /work/venvs/sb3
    /work/venvs/sb3/bin/pip install torch==2.13.0 stable-baselines3==2.9.2 \
        'gymnasium[classic-control,box2d]==1.4.0'
    /work/venvs/sb3/bin/python bench/sb3_dqn.py --env CartPole-v1 --steps 50000
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from rl_summary import first_and_stays, print_seed, print_summary
from stable_baselines3 import DQN
from stable_baselines3.common.callbacks import (
    BaseCallback,
    CallbackList,
    EvalCallback,
    StopTrainingOnRewardThreshold,
)
from stable_baselines3.common.env_util import make_vec_env

ZOO = {  # rl-baselines3-zoo hyperparams/dqn.yml
    "CartPole-v1": dict(learning_rate=2.3e-3, batch_size=64, buffer_size=100_000,
                        learning_starts=1000, gamma=0.99, target_update_interval=10,
                        train_freq=256, gradient_steps=128, exploration_fraction=0.16,
                        exploration_final_eps=0.04, policy_kwargs=dict(net_arch=[256, 256])),
    "LunarLander-v3": dict(learning_rate=6.3e-4, batch_size=128, buffer_size=50_000,
                           learning_starts=0, gamma=0.99, target_update_interval=250,
                           train_freq=4, gradient_steps=-1, exploration_fraction=0.12,
                           exploration_final_eps=0.1, policy_kwargs=dict(net_arch=[256, 256])),
}  # fmt: skip
EVAL_SEED = 1_000_000
VALIDATION_SEED = 2_000_000


def greedy_returns(model, env_id: str, episodes: int) -> np.ndarray:
    envs = [gym.make(env_id) for _ in range(episodes)]
    obs = [e.reset(seed=EVAL_SEED + i)[0] for i, e in enumerate(envs)]
    returns, active = np.zeros(episodes), list(range(episodes))
    while active:
        actions, _ = model.predict(np.stack([obs[i] for i in active]), deterministic=True)
        still = []
        for i, a in zip(active, actions, strict=True):
            o, r, terminated, truncated, _ = envs[i].step(int(a))
            returns[i] += float(r)
            if not (terminated or truncated):
                obs[i] = o
                still.append(i)
        active = still
    return returns


class Evaluate(BaseCallback):
    def __init__(self, env_id: str, every: int, episodes: int):
        super().__init__()
        self.env_id, self.every, self.episodes = env_id, every, episodes
        self.points: list[tuple[int, float]] = []
        self.train_seconds: list[float] = []  # training time (evaluations excluded) at each
        self.seconds = 0.0
        self.start = time.perf_counter()

    def _on_step(self) -> bool:
        if self.num_timesteps % self.every == 0:
            start = time.perf_counter()
            self.train_seconds.append(start - self.start - self.seconds)
            r = greedy_returns(self.model, self.env_id, self.episodes)
            self.seconds += time.perf_counter() - start
            self.points.append((self.num_timesteps, float(r.mean())))
        return True


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--eval-every", type=int, default=2_500)
    parser.add_argument("--eval-episodes", type=int, default=100)
    parser.add_argument("--threshold", type=float, default=475.0)
    parser.add_argument("--within", type=int, default=30_000)
    parser.add_argument("--final-episodes", type=int, default=100)
    parser.add_argument("--stop-when-solved", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    results = []
    for seed in args.seeds:
        env = gym.make(args.env)
        model = DQN("MlpPolicy", env, seed=seed, verbose=0, device="cpu", **ZOO[args.env])
        callback = Evaluate(args.env, args.eval_every, args.eval_episodes)
        callbacks = [callback]
        if args.stop_when_solved:
            threshold = gym.spec(args.env).reward_threshold
            validation = make_vec_env(args.env, n_envs=1, seed=VALIDATION_SEED)
            stop = StopTrainingOnRewardThreshold(reward_threshold=threshold, verbose=0)
            callbacks.append(
                EvalCallback(
                    validation,
                    callback_on_new_best=stop,
                    n_eval_episodes=20,
                    eval_freq=2_500,
                    verbose=0,
                )
            )
        start = callback.start = time.perf_counter()
        model.learn(args.steps, callback=CallbackList(callbacks))
        wall = time.perf_counter() - start
        final = greedy_returns(model, args.env, args.final_episodes)
        points = callback.points or [(model.num_timesteps, float(final.mean()))]
        first, stays = first_and_stays(points, args.threshold)
        results.append(
            {
                "seed": seed,
                "steps": int(model.num_timesteps),
                "final_return": float(final.mean()),
                "first": first,
                "stays": stays,
                "final": points[-1][1],
                "wall_s": wall,
                "train_s": wall - callback.seconds,
                "curve": points,
                "to_threshold_train_s": dict(
                    zip((p[0] for p in points), callback.train_seconds, strict=True)
                ).get(first),
            }
        )
        print_seed(seed, first, stays, points, args.threshold, wall, callback.seconds)
        print(f"  stopped at {model.num_timesteps}; greedy mean over {args.final_episodes} "
              f"evaluation episodes {final.mean():.1f}", flush=True)  # fmt: skip
    print_summary(f"SB3 {args.env}", results, args.threshold, args.within)
    if args.json is not None:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)},
                                         "results": results}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
