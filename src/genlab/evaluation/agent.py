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


def evaluate_agents(
    runs: list[str | os.PathLike | Run], episodes: int = 100, epsilon: float = 0.0
) -> dict[str, Any]:
    """Several runs of agents on one environment (seeds of a configuration), scored as the RL
    community reports them: each run's mean greedy return (`evaluate_agent`, its record written
    as usual), then the interquartile mean over runs with a 95% stratified-bootstrap interval
    (`genlab.rl.aggregate`, as rliable computes them; 50,000 replicates, seed 0).

    Returns:
        The record: env, runs, scores, iqm, iqm_ci, mean, median, protocol.
    """
    import numpy as np

    from genlab.rl.aggregate import bootstrap_interval

    opened = [Run.of(run) for run in runs]
    for run in opened:
        if not run.family.agent:
            raise GenlabError(
                f"genlab eval {run}: a {run.name} run; several runs are scored together for "
                "agents (dqn, qtable) only: rank generators with `genlab compare RUN ...`"
            )
    records = [evaluate_agent(run, episodes, epsilon)[0] for run in opened]
    envs = {r["env"] for r in records}
    if len(envs) > 1:
        raise GenlabError(
            f"the runs play different environments ({', '.join(sorted(envs))}); an interquartile "
            "mean compares runs of one environment"
        )
    scores = np.array([r["mean"] for r in records])
    interval = bootstrap_interval(scores)
    return {
        "env": records[0]["env"],
        "runs": [r["run"] for r in records],
        "steps": [r.get("step") for r in records],
        "scores": [float(s) for s in scores],
        "iqm": interval.value,
        "iqm_ci": [interval.low, interval.high],
        "ci": "95% percentile stratified bootstrap, 50,000 replicates (rliable's)",
        "mean": float(scores.mean()),
        "median": float(np.median(scores)),
        "protocol": records[0]["protocol"],
    }


def describe_aggregate(record: dict[str, Any]) -> str:
    """The record of `evaluate_agents` in a few lines."""
    lo, hi = record["iqm_ci"]
    scores = ", ".join(f"{s:g}" for s in record["scores"])
    return (
        f"{record['env']}: IQM {record['iqm']:.1f} [95% CI {lo:.1f}, {hi:.1f}] over "
        f"{len(record['runs'])} runs (mean {record['mean']:.1f}, median {record['median']:.1f})\n"
        f"per-run mean returns: {scores}\nprotocol: {record['protocol']}"
    )


def describe_record(record: dict[str, Any]) -> str:
    """The record of `evaluate_agent` in two lines."""
    return (
        f"{record['env']}: return mean {record['mean']:.2f} +- {record['std']:.2f} "
        f"(min {record['min']:g}, max {record['max']:g}) over {record['episodes']} episodes\n"
        f"protocol: {record['protocol']}"
    )
