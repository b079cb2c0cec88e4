"""An agent's run, used: load it (with its environment), score it on seeded greedy episodes
(`genlab eval`), render it (`genlab play`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from genlab.errors import GenlabError
from genlab.rl.env import EVAL_SEED, EnvInfo, EnvSpec, describe
from genlab.rl.episodes import Protocol, greedy_returns, rendered_episodes, summary


def is_agent(run: str | os.PathLike) -> bool:
    """Whether a run is of a family that acts in an environment (dqn, qtable)."""
    from genlab.families import get_family
    from genlab.runs import read_config

    return get_family(read_config(run)["family"], str(Path(run) / "config.json")).agent


def load_agent(run: str | os.PathLike, command: str) -> tuple[Any, EnvInfo]:
    """The agent's model and its environment's spaces.

    Raises:
        GenlabError: the run is not an agent's (one line naming what `command` needs).
    """
    from genlab.families import FAMILIES, get_family
    from genlab.io import config_from_dict
    from genlab.runs import load_model, read_config

    config = read_config(run)
    if not get_family(config["family"], str(Path(run) / "config.json")).agent:
        agents = " or ".join(n for n, f in FAMILIES.items() if f.agent)
        raise GenlabError(
            f"{command} {run}: a {config['family']} run, not an agent; give a run of {agents}"
        )
    spec = config_from_dict(EnvSpec, config.get("data", {}), str(Path(run) / "config.json"))
    return load_model(run), describe(spec)


def evaluate_agent(
    run: str | os.PathLike, episodes: int = 100, epsilon: float = 0.0
) -> tuple[dict[str, Any], Path]:
    """Greedy returns of a run on `episodes` seeded evaluation episodes (`Protocol`); the record
    is also written to RUN/eval/episodes-<n>.json.

    Returns:
        The record (mean, std, min, max, episodes, returns, protocol, env, step) and its path.
    """
    import json

    from genlab.runs import write_json

    if episodes <= 0:
        raise GenlabError(f"--episodes {episodes}: give a positive number of episodes")
    model, info = load_agent(run, "genlab eval")
    protocol = Protocol(episodes, epsilon)
    returns = greedy_returns(model.act, info, protocol)
    record = {"run": str(run), "env": info.spec.env, **summary(returns, protocol)}
    state = Path(run) / "state" / "trainer.json"
    if state.is_file():
        record["step"] = json.loads(state.read_text()).get("step")
    suffix = f"-eps{epsilon:g}" if epsilon else ""
    path = Path(run) / "eval" / f"episodes-{episodes}{suffix}.json"
    path.parent.mkdir(exist_ok=True)
    write_json(path, record)
    return record, path


def describe_record(record: dict[str, Any]) -> str:
    """The record of `evaluate_agent` in two lines."""
    return (
        f"{record['env']}: return mean {record['mean']:.2f} +- {record['std']:.2f} "
        f"(min {record['min']:g}, max {record['max']:g}) over {record['episodes']} episodes\n"
        f"protocol: {record['protocol']}"
    )


def play(
    run: str | os.PathLike, out: str | os.PathLike, episodes: int = 3, width: int = 320,
    every: int = 1, first_episode: int = 0,
) -> tuple[Path, list[float], int]:  # fmt: skip
    """An animated GIF of greedy episodes (seeded like the evaluation's episodes, from its
    `first_episode`-th).

    Returns:
        The GIF's path, each episode's return and the number of frames.
    """
    import numpy as np
    from PIL import Image

    from genlab.images import save_gif

    if episodes <= 0:
        raise GenlabError(f"--episodes {episodes}: give a positive number of episodes")
    model, info = load_agent(run, "genlab play")
    frames, returns = rendered_episodes(
        model.act, info, episodes, first_seed=EVAL_SEED + first_episode, every=every
    )
    h, w = frames[0].shape[:2]
    size = (width, max(1, round(h * width / w)))
    resample = Image.NEAREST if w < width else Image.BILINEAR  # MinAtar's 10x10 stays crisp
    small = [np.asarray(Image.fromarray(f).resize(size, resample)) for f in frames]
    return save_gif(out, small, duration_ms=20 * every), returns, len(small)
