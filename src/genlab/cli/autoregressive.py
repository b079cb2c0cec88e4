"""Pictures of autoregressive runs (PixelCNN): `genlab complete`, `pixel-order`, `ar-blur`
(the library's `genlab.pictures.autoregressive`)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from genlab.cli.common import (
    CLASS,
    SEED,
    STRIP_ROWS,
    command_meta,
    echo,
    n_option,
    on_device,
    opt,
    out,
    run_argument,
    strip_option,
)
from genlab.cli.common import TEMPERATURE as SAMPLE_TEMPERATURE
from genlab.options import Option

TEMPERATURE = replace(
    SAMPLE_TEMPERATURE, default=1.0, help="< 1 sharpens each pixel's distribution, > 1 flattens it."
)


@click.command()
@run_argument()
@out("complete.png")
@opt(n_option(8, "Rows: test images, one per class in turn.", 1000))
@opt(Option("samples", "int", 5, "Completions of each image.", min=1, max=100))
@opt(Option("keep", "float", 0.5, "Fraction of the rows kept.", min=0.0, max=1.0))
@opt(TEMPERATURE)
@opt(SEED)
@on_device
def complete(run: Path, out: Path, n: int, samples: int, keep: float, temperature, seed) -> None:
    """Keep the top half of test images and let a PixelCNN write the bottom half."""
    from genlab.pictures.autoregressive import complete as draw

    picture = draw(run, n, samples, seed, temperature, keep)
    picture.save(out, command_meta())
    echo(f"wrote {out} ({picture.note})")


@click.command("pixel-order")
@run_argument()
@out("order.gif", "The GIF to write.")
@strip_option("frames")
@opt(n_option(16, "Samples in each frame.", 1024))
@opt(Option("frames", "int", 28, "Snapshots while the pixels are written.", min=2, max=10_000))
@opt(STRIP_ROWS)
@opt(CLASS)
@opt(TEMPERATURE)
@opt(SEED)
@on_device
def pixel_order(run: Path, out: Path, strip, n, frames, rows, class_name, temperature, seed):
    """A PixelCNN writing samples pixel by pixel in raster order, as an animated GIF."""
    from genlab.pictures.autoregressive import order

    result = order(run, n, frames, seed, class_name, temperature)
    result.save_gif(out)
    echo(f"wrote {out} ({len(result.frames)} frames)")
    if strip is not None:
        result.strip(rows).save(strip, command_meta())
        echo(f"wrote {strip}")


@click.command("ar-blur")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@out("blur.png")
@opt(n_option(10, "Samples per row.", 1000))
@opt(Option("eval_n", "int", 0, "Also score this many samples each way (FD, modes); 0: no.",
            min=0, max=100_000))  # fmt: skip
@opt(SEED)
@on_device
def ar_blur(runs: tuple[Path, ...], out: Path, n: int, eval_n: int, seed: int) -> None:
    """Too many pixels at once: PixelCNN runs trained with different --pixels-per-step, each
    sampled by drawing every pixel and by taking every pixel's mean (two rows per run)."""
    from genlab.pictures.autoregressive import blur

    result = blur(list(runs), n, seed, eval_n, progress=eval_n > 0)
    result.picture.save(out, command_meta())
    echo(f"wrote {out} ({result.picture.note})")
    echo(result.table())


COMMANDS = [complete, pixel_order, ar_blur]
