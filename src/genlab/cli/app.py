"""`genlab app` (the library's `genlab.app.serve`) and `genlab board` (TensorBoard)."""

from __future__ import annotations

from pathlib import Path

import click

from genlab.cli.common import echo, on_device


@click.command()
@click.option(
    "--runs",
    type=click.Path(path_type=Path),
    default=Path("runs"),
    show_default=True,
    help="Folder of run directories to list next to the shipped runs.",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Anything but 127.0.0.1 exposes the app to your network.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=7860,
    show_default=True,
    help="Port (0: any free port).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder for the pictures the app makes (default: a new temporary folder).",
)
@click.option(
    "--shipped/--no-shipped",
    default=True,
    show_default=True,
    help="List the runs that ship with genlab.",
)
@on_device
def app(runs: Path, host: str, port: int, out: Path | None, shipped: bool) -> None:
    """A local web app: sample any run, explore latent spaces, scrub the diffusion process,
    prompt the text-to-image model, train a 2-D GAN live, compare runs, watch a PixelCNN write
    and a DQN play. Listens on 127.0.0.1 only unless --host says otherwise; Ctrl-C stops it."""
    from genlab.app import LOCAL_HOSTS, serve

    if host not in LOCAL_HOSTS:
        echo(
            f"warning: --host {host} serves the app to every machine that can reach this "
            "address; nothing here asks for a password"
        )
    if not runs.is_dir():
        echo(f"note: {runs} does not exist yet; listing only the shipped runs")

    def ready(url: str) -> None:
        echo(f"genlab app on {url} (Ctrl-C stops it)")

    from genlab.devices import resolve

    serve(runs, host, port, out, shipped, block=True, on_ready=ready, device=str(resolve()))


@click.command()
@click.argument("runs", type=click.Path(path_type=Path), default=Path("runs"), required=False)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Anything but 127.0.0.1 exposes the board to your network.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=6006,
    show_default=True,
    help="Port (0: any free port).",
)
def board(runs: Path, host: str, port: int) -> None:
    """TensorBoard on the event files of every run under RUNS (default: runs/): each run writes
    RUN/tensorboard/ unless trained with --no-tensorboard. Listens on 127.0.0.1 only unless
    --host says otherwise; Ctrl-C stops it. `genlab compare` and the app's Compare tab remain
    genlab's own view of the same runs."""
    import time

    from genlab.errors import GenlabError

    if not runs.is_dir():
        raise GenlabError(f"{runs}: not a folder; give the folder that holds your run directories")
    if next(runs.rglob("events.out.tfevents.*"), None) is None:
        raise GenlabError(
            f"{runs}: no TensorBoard event files under it; runs write them in RUN/tensorboard/ "
            "unless trained with --no-tensorboard"
        )
    from tensorboard import program

    tb = program.TensorBoard()
    tb.configure(logdir=str(runs), host=host, port=port, reload_interval=15)
    url = tb.launch()
    echo(f"TensorBoard of {runs} at {url} (Ctrl-C stops it)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


COMMANDS = [app, board]
