"""The training steps of the RL families: one engine step is one environment step.

`AgentStep` owns the interaction: an epsilon-greedy action, the environment step, episode
bookkeeping (returns, seeds), greedy evaluations every `eval_every` steps in separate
environments, and the state that makes resume exact without pickling the environment: the
episode in progress is its reset seed (a pure function of the run's seed and the episode
number) plus the actions taken so far, replayed on resume. `DQNStep` adds the replay buffer,
n-step returns, the target network and the gradient updates; `QTableStep` the table update.

An agent that solves its environment stops training (`finished`): once an evaluation reaches the
solved return (the environment's reward_threshold unless the agent's config says otherwise), a
larger greedy check on validation episodes, apart from the evaluation episodes, confirms it; the
run then ends with that policy, rather than training on until its learning rate and moving
targets shake it (as Stable-Baselines3's StopTrainingOnRewardThreshold, plus the confirmation).
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from genlab.errors import GenlabError
from genlab.io import config_from_dict
from genlab.models.dqn import AgentConfig, epsilon_at, polyak_
from genlab.models.qtable import q_learning_update
from genlab.rl.env import VALIDATION_SEED, EnvInfo, episode_seed, make_env, observation_array
from genlab.rl.episodes import Protocol, greedy_returns
from genlab.rl.replay import NStep, ReplayBuffer
from genlab.training.config import lr_at
from genlab.training.step import ENVIRONMENT_STEPS, Engine, Step, StepState, prefixed, with_prefix


class AgentStep(Step[EnvInfo]):
    """One environment step of an epsilon-greedy agent; subclasses `learn` from it."""

    units = ENVIRONMENT_STEPS

    def __init__(self, engine: Engine, model: nn.Module, data: EnvInfo):
        super().__init__(engine, model, data)
        if engine.shard.world > 1:
            raise GenlabError(
                "the RL families train in one process (one agent, one environment); run "
                "`genlab train` without accelerate launch or torchrun"
            )
        self.info, self.cfg = data, self.settings()
        self.env = make_env(self.info.spec.env)
        self.generator = torch.Generator().manual_seed(engine.config.seed)
        self.episode, self.actions, self.episode_return = 0, [], 0.0
        self.window: dict[str, Any] = self._empty_window()
        self.last_eval: tuple[float, float] | None = None
        self.eval_seconds = 0.0  # wall time spent in evaluations, summed over resumes
        self.solved: dict[str, float] | None = None  # when and how the agent solved it
        self.obs = self._reset()

    def settings(self):
        """How the agent learns: exploration (eps_*), evaluation (eval_*), and the family's own
        (a DQN's `AgentConfig`; a Q-table keeps them in its model config)."""
        return self.model.config

    # ---------------------------------------------------------------- the environment

    def _reset(self) -> np.ndarray:
        obs, _ = self.env.reset(seed=episode_seed(self.engine.config.seed, self.episode))
        return observation_array(obs, self.info)

    def _replay(self, actions: torch.Tensor | None) -> np.ndarray:
        """The episode in progress at the checkpoint, restored: reset with its seed and replay
        its actions."""
        obs = self._reset()
        self.actions, self.episode_return = [], 0.0
        for a in [] if actions is None else actions.tolist():
            o, r, terminated, truncated, _ = self.env.step(a)
            if terminated or truncated:
                raise GenlabError(
                    f"{self.engine.run_dir}: replaying the episode in progress ended it early; "
                    f"{self.info.spec.env} is not deterministic given its seed, so this run "
                    "cannot resume exactly"
                )
            obs = observation_array(o, self.info)
            self.actions.append(int(a))
            self.episode_return += float(r)
        return obs

    def choose(self, step: int) -> int:
        """An epsilon-greedy action at `step`."""
        eps = self.epsilon(step)
        if torch.rand((), generator=self.generator).item() < eps:
            return int(torch.randint(self.info.n_actions, (), generator=self.generator))
        obs = torch.from_numpy(self.obs[None]).to(self.engine.device)
        return int(self.model.act(obs)[0])

    def epsilon(self, step: int) -> float:
        return epsilon_at(step, self.cfg)

    # ---------------------------------------------------------------- the step

    def __call__(self, step: int, progress: float) -> dict[str, torch.Tensor]:
        a = self.choose(step)
        o, r, terminated, truncated, _ = self.env.step(a)
        next_obs = observation_array(o, self.info)
        self.observe(self.obs, a, float(r), next_obs, terminated, truncated)
        self.actions.append(a)
        self.episode_return += float(r)
        if terminated or truncated:
            self.window["returns"].append(self.episode_return)
            self.window["lengths"].append(len(self.actions))
            self.episode, self.actions, self.episode_return = self.episode + 1, [], 0.0
            self.obs = self._reset()
        else:
            self.obs = next_obs
        self.learn(step, progress)
        every = self.cfg.eval_every
        if every and (step + 1) % every == 0:
            self.evaluate()
            self.check_solved(step + 1)
        return {}

    def observe(self, obs, action, reward, next_obs, terminated, truncated) -> None:
        """Take in one transition (store it, or update the table)."""
        raise NotImplementedError

    def learn(self, step: int, progress: float) -> None:
        """Updates after the environment step `step` (if any are due)."""

    def evaluate(self) -> None:
        """Greedy returns on the evaluation episodes, into the open logging window."""
        returns = self.greedy(Protocol(self.cfg.eval_episodes))
        self.last_eval = (float(returns.mean()), float(returns.std()))
        self.window["eval"] = list(self.last_eval)

    def greedy(self, protocol: Protocol) -> np.ndarray:
        """The greedy policy's returns on `protocol`'s episodes (the network in eval mode
        meanwhile); the time it takes counts into `eval_seconds`."""
        was = self.model.training
        self.model.eval()
        start = time.perf_counter()
        returns = greedy_returns(self.policy, self.info, protocol)
        self.eval_seconds += time.perf_counter() - start
        self.model.train(was)
        return returns

    def policy(self, obs: torch.Tensor) -> torch.Tensor:
        return self.model.act(obs.to(self.engine.device)).cpu()

    # ---------------------------------------------------------------- solved: stop early

    def solved_return(self) -> tuple[float, str] | None:
        """The mean greedy return at which training stops and where it comes from, in words
        (None: it never stops early)."""
        return None

    def check_solved(self, steps: int) -> None:
        """After an evaluation at `steps` environment steps: if its mean reached the solved
        return, confirm on `solved_episodes` validation episodes; when they agree, the agent is
        solved and `finished` ends training."""
        solved = self.solved_return()
        if self.solved is not None or solved is None or self.last_eval[0] < solved[0]:
            return
        target, source = solved
        returns = self.greedy(Protocol(self.cfg.solved_episodes, first_seed=VALIDATION_SEED))
        if returns.mean() >= target:
            self.solved = {"step": steps, "target": target, "source": source,
                           "eval_return": self.last_eval[0],
                           "validation_return": float(returns.mean())}  # fmt: skip

    def finished(self) -> tuple[str, str] | None:
        s = self.solved
        if s is None:
            return None
        return "solved", (
            f"solved at step {s['step']}: greedy mean return {s['eval_return']:.1f} on "
            f"{self.cfg.eval_episodes} evaluation episodes and {s['validation_return']:.1f} on "
            f"{self.cfg.solved_episodes} validation episodes, both >= {s['target']:g} "
            f"({s['source']}), so training stopped with this policy "
            "(--no-stop-when-solved trains the whole budget)"
        )

    # ---------------------------------------------------------------- what the engine asks

    @property
    def units_per_step(self) -> int:
        return 1

    @property
    def epoch_size(self) -> None:
        return None  # no epochs: metrics.csv counts episodes instead

    @staticmethod
    def _empty_window() -> dict[str, Any]:
        return {"returns": [], "lengths": [], "loss": 0.0, "q": 0.0, "updates": 0, "eval": None}

    def columns(self, step: int, window: int, final: bool) -> dict[str, Any]:
        w, nan = self.window, float("nan")
        n = w["updates"]
        row = {
            "episodes": self.episode,
            "train_return": float(np.mean(w["returns"])) if w["returns"] else nan,
            "episode_length": float(np.mean(w["lengths"])) if w["lengths"] else nan,
            "loss": w["loss"] / n if n else nan,
            "q": w["q"] / n if n else nan,
            "epsilon": round(self.epsilon(max(step - 1, 0)), 5),
            "eval_return": w["eval"][0] if w["eval"] else nan,
            "eval_std": w["eval"][1] if w["eval"] else nan,
            "eval_s": round(self.eval_seconds, 2),
        }
        self.window = self._empty_window()
        return row

    def postfix(self, means: dict[str, float], row: dict[str, Any]) -> dict[str, str]:
        out = {"eps": f"{row['epsilon']:.2f}"}
        if not math.isnan(row["train_return"]):
            out["return"] = f"{row['train_return']:.1f}"
        if self.last_eval is not None:
            out["eval"] = f"{self.last_eval[0]:.1f}"
        return out

    def state_dict(self) -> StepState:
        """The episode in progress as its seed and actions (replayed on load), the window, the
        exploration generator."""
        state = super().state_dict()
        trainer = {
            "episode": self.episode,
            "window": self.window,
            "last_eval": self.last_eval,
            "eval_s": self.eval_seconds,
            "solved": self.solved,
        }
        extra = {
            "generator": self.generator.get_state(),
            "episode_actions": torch.tensor(self.actions, dtype=torch.int64),
            "observation": torch.from_numpy(np.ascontiguousarray(self.obs).copy()),
        }
        return state._replace(trainer={**state.trainer, **trainer}, extra=extra)

    def load_state_dict(self, state: StepState) -> None:
        super().load_state_dict(state)
        t = state.trainer
        self.episode, self.window = t["episode"], t["window"]
        self.last_eval = tuple(t["last_eval"]) if t.get("last_eval") else None
        self.eval_seconds = t.get("eval_s", 0.0)
        self.solved = t.get("solved")
        self.generator.set_state(state.extra["generator"])
        self.obs = self._replay(state.extra.get("episode_actions"))
        saved = state.extra.get("observation")
        saved = saved.numpy().ravel() if saved is not None else None  # safetensors: no 0-d
        if saved is not None and not np.array_equal(saved, np.ravel(self.obs)):
            warnings.warn(
                f"{self.engine.run_dir}: replaying the episode in progress did not reach the "
                f"saved observation; {self.info.spec.env} is not deterministic given its "
                "seed and actions, so training continues from a different state",
                stacklevel=2,
            )


class DQNStep(AgentStep):
    """DQN: the transition into the replay buffer (through n-step returns), then every
    `train_every` steps one Adam update on a sampled batch and a target-network update."""

    def settings(self) -> AgentConfig:
        """The run's `AgentConfig` (config.json's "agent")."""
        run = self.engine.run
        return config_from_dict(AgentConfig, run.config.get("agent", {}), run.source)

    def __init__(self, engine: Engine, model: nn.Module, data: EnvInfo):
        super().__init__(engine, model, data)
        c, info = self.cfg, self.info
        shape = info.observation_shape
        dtype = np.int64 if info.n_states is not None else (np.uint8 if len(shape) == 3 else
                                                            np.float32)  # fmt: skip
        self.buffer = ReplayBuffer(c.buffer_size, shape, dtype, c.prioritized, c.alpha)
        self.nstep = NStep(c.n_step, c.gamma)
        self.target = copy.deepcopy(model).requires_grad_(False)
        fused = engine.device.type in ("cpu", "cuda")  # one kernel for all parameters
        self.optimizer = torch.optim.Adam(model.parameters(), lr=engine.config.lr, fused=fused)
        self.updates = 0
        self.lrs = {"lr": lr_at(0.0, engine.config, 0)}  # a column from the first row on

    def solved_return(self) -> tuple[float, str] | None:
        c, threshold = self.cfg, self.info.reward_threshold
        if not c.stop_when_solved:
            return None
        if c.solved_return is not None:
            return c.solved_return, "--solved-return"
        if threshold is None:
            return None
        return threshold, f"{self.info.spec.env}'s reward threshold"

    def observe(self, obs, action, reward, next_obs, terminated, truncated) -> None:
        for t in self.nstep.push(obs, action, reward, next_obs, terminated, truncated):
            self.buffer.add(t)

    def learn(self, step: int, progress: float) -> None:
        c, engine, tcfg = self.cfg, self.engine, self.engine.config
        done = step + 1
        if done < c.learning_starts or done % c.train_every or len(self.buffer) == 0:
            return
        lr = lr_at(progress, tcfg, step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.lrs = {"lr": lr}
        beta = c.beta + (1.0 - c.beta) * min(max(progress, 0.0), 1.0)
        sample = self.buffer.sample(tcfg.batch_size, self.generator, beta)
        sample = type(sample)(*(t.to(engine.device) for t in sample))
        with engine.accelerator.autocast():
            loss, td, logs = self.model.td_loss(sample, self.target, c.double)
        engine.guard(loss, "the TD loss", self.lower)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if tcfg.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), tcfg.grad_clip)
        self.optimizer.step()
        self.buffer.update_priorities(sample.index, td.cpu())
        self.updates += 1
        if self.updates % c.target_every == 0:
            polyak_(self.target, self.model, c.tau)
        self.window["loss"] += float(loss.detach())
        self.window["q"] += float(logs["q"])
        self.window["updates"] += 1

    def optimizers(self):
        return self.optimizer

    def state_dict(self) -> StepState:
        """The agent's state, the target network, the replay buffer and the n-step queue."""
        state = super().state_dict()
        tensors, meta = self.buffer.state()
        extra = {
            **state.extra,
            **with_prefix(self.target.state_dict(), "target."),
            **with_prefix(tensors, "buffer."),
            **with_prefix(self.nstep.state(), "nstep."),
        }
        trainer = {**state.trainer, "buffer": meta, "updates": self.updates}
        return state._replace(trainer=trainer, extra=extra)

    def load_state_dict(self, state: StepState) -> None:
        super().load_state_dict(state)
        self.target.load_state_dict(prefixed(state.extra, "target."))
        self.buffer.load(prefixed(state.extra, "buffer."), state.trainer["buffer"])
        self.nstep.load(prefixed(state.extra, "nstep."))
        self.updates = state.trainer["updates"]
        if self.updates > 0:  # the column shows the last update's rate, resumed or not
            self.lrs = {"lr": self.optimizer.param_groups[0]["lr"]}


class QTableStep(AgentStep):
    """Tabular Q-learning: the table updated after every environment step."""

    lower = "--alpha"

    def __init__(self, engine: Engine, model: nn.Module, data: EnvInfo):
        super().__init__(engine, model, data)
        self.table = model.q  # updated in place (the model's buffer, saved with the weights)

    def observe(self, obs, action, reward, next_obs, terminated, truncated) -> None:
        c = self.cfg
        td = q_learning_update(
            self.table, int(obs), action, reward, int(next_obs), terminated, c.alpha, c.gamma
        )
        if not math.isfinite(td):
            self.engine.guard(torch.tensor(td), "the TD error", self.lower)
        self.window["loss"] += td * td
        self.window["q"] += float(self.table[int(obs)].max())
        self.window["updates"] += 1

    def optimizers(self):
        return {}
