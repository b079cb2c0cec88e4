"""`genlab play` and `genlab q-values`: an agent's episodes as a GIF, its Q(s, a) as a picture
(`genlab eval RUN` scores an agent's greedy episodes; `genlab plot RUN` draws its curves)."""

from __future__ import annotations

from pathlib import Path

import click

from genlab.cli.common import command_meta, echo, on_device, opt, out, run_argument
from genlab.options import Option

EPISODES = Option("episodes", "int", 3, "Greedy episodes to render.", min=1, max=1000)


@click.command()
@run_argument("A run of an agent (genlab train dqn / qtable).")
@opt(EPISODES)
@out("agent.gif", "The GIF to write.")
@opt(Option("width", "int", 320, "Frame width in pixels.", min=16, max=2048))
@opt(Option("every", "int", 2, "Keep every k-th frame.", min=1, max=1000))
@on_device
def play(run: Path, episodes: int, out: Path, width: int, every: int) -> None:
    """Render the agent's greedy episodes (seeded as the evaluation's first ones) as a GIF."""
    from genlab.pictures.agent import play as render

    path, returns, frames = render(run, out, episodes, width, every)
    shown = ", ".join(f"{r:g}" for r in returns)
    echo(f"wrote {path}: {episodes} episodes, {frames} frames, returns {shown}")


@click.command("q-values")
@run_argument("A run of an agent (genlab train dqn / qtable).")
@out("q_values.png")
@opt(Option("dims", "ints", None,
            "Two state dimensions to sweep (CartPole: 0,2 = cart position, pole angle).",
            length=2, min=0, max=1024))  # fmt: skip
@opt(Option("resolution", "int", 101, "Grid points per dimension.", min=2, max=2001))
@on_device
def q_values(run: Path, out: Path, dims, resolution: int) -> None:
    """Draw the learned action values Q(s, a) over two state dimensions (or a grid world)."""
    from genlab.pictures.agent import q_values as draw

    dims = tuple(dims) if dims is not None else None
    echo(f"wrote {draw(run, out, dims, resolution, command_meta())}")


COMMANDS = [play, q_values]
