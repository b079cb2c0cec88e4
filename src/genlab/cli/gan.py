"""GAN pictures: `genlab gan-gradients`, `toy-gan`, and a CycleGAN's `translate`."""

from __future__ import annotations

from pathlib import Path

import click

from genlab.cli.common import SEED, command_meta, echo, on_device, opt, out, run_argument
from genlab.options import Option


@click.command("gan-gradients")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@out("gan_gradients.png")
@on_device
def gan_gradients(runs: tuple[Path, ...], out: Path) -> None:
    """Why the minimax loss saturates: G's gradient against D(G(z)), with measured points.

    The curves are |d loss_G / d logit| for the minimax and non-saturating losses; each run adds
    one point per metrics.csv row: mean D(G(z)) and G's gradient norm at its updates."""
    from genlab.pictures.gan import gan_gradients as draw

    note = draw(list(runs), out, command_meta())
    echo(f"wrote {out}: {note}")


@click.command("toy-gan")
@opt(Option("data", "str", "ring", "ring (8 modes) or grid (25 modes).", choices=("ring", "grid")))
@opt(Option("loss", "str", "ns", "The GAN loss.", choices=("minimax", "ns", "hinge", "wgan-gp")))
@opt(Option("steps", "int", 2000, "Generator steps.", min=1, max=10**7))
@opt(Option("n_critic", "int", 1, "D steps per G step.", min=1, max=100))
@opt(Option("lr", "float", 2e-3, "Adam learning rate of both players.", min=0.0, min_open=True,
            max=1.0))  # fmt: skip
@opt(Option("frames", "int", 20, "Snapshots in the GIF (about).", min=1, max=10_000))
@opt(SEED)
@out("toy_gan.gif", "The GIF to write.")
def toy_gan(data, loss, steps, n_critic, lr, frames, seed, out: Path) -> None:
    """Mode collapse made visible: a small GAN on a 2-D mixture of Gaussians, as a GIF."""
    from genlab.toy2d import animate, train_toy

    result = train_toy(
        data, loss, steps=steps, seed=seed, n_critic=n_critic, lr=lr,
        snapshot_every=max(1, steps // frames),
    )  # fmt: skip
    animate(result, out)
    cov, k = result.coverage[-1], len(result.centres)
    echo(
        f"wrote {out} ({len(result.snapshots)} frames): after {steps} steps the {loss} GAN "
        f"covers {cov.modes_covered}/{k} modes, {cov.high_quality:.0%} of samples within 3 std"
    )


@click.command()
@run_argument()
@click.option("--images", required=True, type=click.Path(path_type=Path),
              help="A folder of images to translate (searched recursively).")  # fmt: skip
@click.option("--out", "-o", "out", required=True, type=click.Path(path_type=Path),
              help="The folder to write PNGs to.")  # fmt: skip
@opt(Option("direction", "str", "ab", "ab (domain A to B) or ba (B to A).", choices=("ab", "ba")))
@click.option("--grid", type=click.Path(path_type=Path), default=None,
              help="Before/after grid PNG of the first 32 (default: OUT_grid.png).")  # fmt: skip
@on_device
def translate(run: Path, images: Path, out: Path, direction: str, grid: Path | None) -> None:
    """Translate every image of a folder with a CycleGAN run, keeping the file names.

    Images are resized and centre-cropped to the run's size and channels, as in training."""
    from genlab.pictures.gan import translate as translate_folder

    result = translate_folder(run, images, direction)
    meta = {**command_meta(), "run": str(run)}
    result.save(out, meta)
    grid = grid or out.parent / f"{out.name}_grid.png"
    result.grid().save(grid, meta)
    echo(f"translated {len(result.names)} images ({result.direction}) into {out}; wrote {grid}")


COMMANDS = [gan_gradients, toy_gan, translate]
