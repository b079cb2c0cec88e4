"""Gymnasium environments for the RL families: made by id with one-line errors, described by
their spaces (`EnvInfo`, a run's "data"), and seeded per episode by a pure function.

Every training episode k of a run with seed s starts from `reset(seed=episode_seed(s, k))`, and
evaluation episode i from `reset(seed=EVAL_SEED + i)`: the environments genlab uses are
deterministic given the reset seed and the actions, so an episode in progress is restored on
resume by resetting with its seed and replaying its actions (no pickled environment state).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any

from genlab.errors import GenlabError

EVAL_SEED = 1_000_000
"""Evaluation episode i resets with seed EVAL_SEED + i: every run and every family is scored on
the same episodes, none of which training sees (training seeds stay below 2**31 - 1 and are
drawn from (run seed, episode) by `episode_seed`)."""

VALIDATION_SEED = 2_000_000
"""Validation episode i (the check that confirms an agent solved its environment before
training stops early) resets with VALIDATION_SEED + i: apart from the evaluation episodes, so
the return `genlab eval` reports is measured on episodes the stopping decision never saw."""

EXAMPLES = "CartPole-v1, LunarLander-v3, FrozenLake-v1, CliffWalking-v1, MinAtar/Breakout-v1"

PACKAGES = {  # environment families whose package is an extra install
    "MinAtar/": "minatar==1.0.15",
}


@dataclass(frozen=True)
class EnvSpec:
    """Which environment a run acts in; stored as config.json's "data".

    Attributes:
        env: the gymnasium id (CartPole-v1, LunarLander-v3, FrozenLake-v1, MinAtar/Breakout-v1).
    """

    env: str = "CartPole-v1"


@dataclass(frozen=True)
class EnvInfo:
    """What an agent needs to know of its environment (read once when a run is created).

    Attributes:
        spec: the EnvSpec.
        observation_shape: the shape of one observation; () for a discrete state.
        n_states: the number of states of a discrete observation space (None: continuous).
        n_actions: the number of discrete actions.
        low, high: per-dimension bounds of a vector observation (None when not a vector).
        max_episode_steps: the time limit (None: none).
        reward_threshold: the mean return at which the environment counts as solved
            (gymnasium's spec, e.g. 475 for CartPole-v1; None: none).
    """

    spec: EnvSpec
    observation_shape: tuple[int, ...]
    n_states: int | None
    n_actions: int
    low: tuple[float, ...] | None
    high: tuple[float, ...] | None
    max_episode_steps: int | None
    reward_threshold: float | None = None


def _quiet() -> None:
    """pygame and SDL: no window, no audio, no greeting (rendering is to arrays only)."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")


def make_env(env_id: str, render_mode: str | None = None):
    """A gymnasium environment by id (without the passive checker, which costs every step).

    Raises:
        GenlabError: an unknown id (with examples), or one whose package is not installed
            (with the `pip install` that adds it).
    """
    _quiet()
    try:
        import gymnasium as gym
    except ImportError:
        raise GenlabError(
            "reinforcement learning needs gymnasium: pip install 'gymnasium[classic-control]"
            "==1.4.0' (make setup installs it)"
        ) from None
    for prefix, package in PACKAGES.items():
        if env_id.startswith(prefix):
            try:
                import minatar.gym
            except ImportError:
                raise GenlabError(
                    f"{env_id} needs the minatar package: pip install {package}"
                ) from None
            if env_id not in gym.registry:
                minatar.gym.register_envs()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            env = gym.make(env_id, render_mode=render_mode, disable_env_checker=True)
        return _EpisodeStart(env) if env_id.startswith("MinAtar/") else env
    except gym.error.DependencyNotInstalled as e:
        hint = "pip install 'gymnasium[box2d]==1.4.0'" if "box2d" in str(e).lower() else str(e)
        raise GenlabError(f"{env_id} needs a package that is not installed: {hint}") from None
    except gym.error.Error as e:
        first = str(e).strip().splitlines()[0].rstrip(".")
        raise GenlabError(f"unknown environment {env_id!r} ({first}); e.g. {EXAMPLES}") from None


def _episode_start_wrapper():
    import gymnasium as gym

    class EpisodeStart(gym.Wrapper):
        """MinAtar keeps its sticky-action memory (the last action) across resets, so an
        episode would depend on the one before it; this clears it, so that an episode depends
        only on its seed and its actions (what exact resume replays)."""

        def reset(self, **kwargs):
            self.env.unwrapped.game.last_action = 0
            return self.env.reset(**kwargs)

    return EpisodeStart


def _EpisodeStart(env):  # noqa: N802 (a class made on first use: gymnasium imports lazily)
    return _episode_start_wrapper()(env)


def describe(spec: EnvSpec) -> EnvInfo:
    """The spaces of an environment, checked to have discrete actions.

    Raises:
        GenlabError: as `make_env`, or continuous (or otherwise non-discrete) actions.
    """
    from gymnasium import spaces

    env = make_env(spec.env)
    try:
        obs, act = env.observation_space, env.action_space
        if not isinstance(act, spaces.Discrete):
            raise GenlabError(
                f"{spec.env} has {type(act).__name__} actions {act}: genlab's agents choose "
                "among discrete actions (DQN's argmax over Q(s, a)); pick an environment with "
                f"Discrete actions, e.g. {EXAMPLES}"
            )
        n_states, low, high = None, None, None
        if isinstance(obs, spaces.Discrete):
            shape, n_states = (), int(obs.n)
        elif isinstance(obs, spaces.Box):
            shape = tuple(int(s) for s in obs.shape)
            if len(shape) == 1:
                low = tuple(float(v) for v in obs.low)
                high = tuple(float(v) for v in obs.high)
        else:
            raise GenlabError(
                f"{spec.env} has {type(obs).__name__} observations: genlab's agents read a "
                "discrete state, a vector or an image (Box)"
            )
        limit = env.spec.max_episode_steps if env.spec is not None else None
        solved = env.spec.reward_threshold if env.spec is not None else None
        solved = float(solved) if solved is not None else None
        return EnvInfo(spec, shape, n_states, int(act.n), low, high, limit, solved)
    finally:
        env.close()


def episode_seed(seed: int, episode: int) -> int:
    """The reset seed of training episode `episode` of a run with `seed` (pure; below 2**31 and
    never one of the evaluation seeds' range)."""
    import hashlib

    digest = hashlib.blake2b(f"{seed}:{episode}".encode(), digest_size=8).digest()
    value = int.from_bytes(digest, "little") % (2**31 - 1 - 10**7)
    return value + 10**7  # above EVAL_SEED's range


def observation_array(obs: Any, info: EnvInfo):
    """An observation as a float32 (or uint8, for images) numpy array of the network's input:
    a vector as it is, a discrete state as its index (one-hot in the network), an image
    (H, W, C) as it is."""
    import numpy as np

    if info.n_states is not None:
        return np.asarray(obs, dtype=np.int64)
    if len(info.observation_shape) == 3:
        return np.asarray(obs, dtype=np.uint8)
    return np.asarray(obs, dtype=np.float32)
