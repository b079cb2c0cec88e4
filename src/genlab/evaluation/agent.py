"""An agent's run, scored: load it with its environment and run seeded greedy episodes
(`genlab eval` of a dqn or qtable run). Rendering its episodes is `genlab.pictures.agent.play`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from genlab.errors import GenlabError
from genlab.rl.env import EnvInfo, EnvSpec, describe
from genlab.rl.episodes import Protocol, greedy_returns, summary
from genlab.runs import Run, config_from_dict, write_json


def load_agent(run: str | os.PathLike | Run, command: str) -> tuple[Any, EnvInfo]:
    """The agent's model and its environment's spaces.

    Raises:
        GenlabError: the run is not an agent's (one line naming what `command` needs).
    """
    from genlab.families import FAMILIES

    run = Run.of(run)
    if not run.family.agent:
        agents = " or ".join(n for n, f in FAMILIES.items() if f.agent)
        raise GenlabError(
            f"{command} {run}: a {run.name} run, not an agent; give a run of {agents}"
        )
    spec = config_from_dict(EnvSpec, run.config.get("data", {}), run.source)
    return run.model(), describe(spec)


def evaluate_agent(
    run: str | os.PathLike | Run, episodes: int = 100, epsilon: float = 0.0
) -> tuple[dict[str, Any], Path]:
    """Greedy returns of a run on `episodes` seeded evaluation episodes (`Protocol`); the record
    is also written to RUN/eval/episodes-<n>.json.

    Returns:
        The record (mean, std, min, max, episodes, returns, protocol, env, step) and its path.
    """
    if episodes <= 0:
        raise GenlabError(f"--episodes {episodes}: give a positive number of episodes")
    run = Run.of(run)
    model, info = load_agent(run, "genlab eval")
    protocol = Protocol(episodes, epsilon)
    returns = greedy_returns(model.act, info, protocol)
    record = {"run": str(run), "env": info.spec.env, **summary(returns, protocol)}
    if run.trained_step is not None:
        record["step"] = run.trained_step
    suffix = f"-eps{epsilon:g}" if epsilon else ""
    path = run.path / "eval" / f"episodes-{episodes}{suffix}.json"
    path.parent.mkdir(exist_ok=True)
    write_json(path, record)
    from genlab.training.board import write_eval

    write_eval(run, path.stem, record)
    return record, path


def describe_record(record: dict[str, Any]) -> str:
    """The record of `evaluate_agent` in two lines."""
    return (
        f"{record['env']}: return mean {record['mean']:.2f} +- {record['std']:.2f} "
        f"(min {record['min']:g}, max {record['max']:g}) over {record['episodes']} episodes\n"
        f"protocol: {record['protocol']}"
    )
