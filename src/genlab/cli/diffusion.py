"""Pictures of diffusion models: `genlab forward`, `denoise`, `guidance`, `txt2img` (the
library's `genlab.pictures.diffusion` and `genlab.sampling`)."""

from __future__ import annotations

from pathlib import Path

import click

from genlab.cli.common import (
    CLASS,
    CLASSIFIER,
    GUIDANCE,
    PROMPT,
    SAMPLER,
    SEED,
    STEPS,
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
from genlab.options import Option


@click.command()
@run_argument()
@out("forward.png")
@opt(Option("n", "int", 4, "Rows: test images, one per class in turn.", min=1, max=1000))
@opt(Option("columns", "int", 10, "Noise levels from t=0 to T-1.", min=2, max=1000))
@opt(SEED)
@on_device
def forward(run: Path, out: Path, n: int, columns: int, seed: int) -> None:
    """The forward process as a strip: test images noised from t=0 (clean) to T-1 (noise)."""
    from genlab.pictures.diffusion import forward as draw

    picture = draw(run, n, columns, seed)
    picture.save(out, command_meta())
    echo(f"wrote {out} ({picture.note})")


@click.command()
@run_argument()
@out("denoise.gif", "The GIF to write.")
@strip_option("steps")
@opt(n_option(16, "Samples in each frame.", 1024))
@opt(Option("frames", "int", 20, "Frames from x_T to x_0.", min=2, max=1000))
@opt(STRIP_ROWS)
@opt(SEED)
@opt(CLASS)
@opt(PROMPT)
@opt(SAMPLER)
@opt(STEPS)
@opt(GUIDANCE)
@on_device
def denoise(run: Path, out: Path, strip, n, frames, rows, seed, class_name, **options) -> None:
    """The reverse process: n samples from pure noise to images, as an animated GIF."""
    from genlab.pictures.diffusion import denoise as draw

    result = draw(run, n, frames, seed, class_name, **options)
    result.save_gif(out)
    ts = result.timesteps
    echo(f"wrote {out} ({len(result.frames)} frames, t = {ts[0]} ... {ts[-1]})")
    if strip is not None:
        result.strip(rows).save(strip, command_meta())
        echo(f"wrote {strip}")


@click.command()
@run_argument()
@out("guidance.png")
@opt(Option("scales", "floats", (0.0, 1.0, 2.0, 3.0, 5.0),
            "Comma-separated guidance weights, one row each.", min=0.0, max=1000.0))  # fmt: skip
@opt(Option("columns", "int", 10, "Samples per row (classes in turn).", min=1, max=1000))
@opt(CLASS)
@opt(PROMPT)
@opt(CLASSIFIER)
@opt(SEED)
@opt(SAMPLER)
@opt(STEPS)
@on_device
def guidance(run: Path, out: Path, scales, columns, class_name, **options) -> None:
    """A grid sweeping the guidance scale: one row per scale, the same noise in every row.

    Classifier-free guidance by default; with --classifier the scales are classifier scales."""
    from genlab.pictures.diffusion import guidance as draw

    picture = draw(run, scales, columns, class_name, **options)
    picture.save(out, command_meta())
    echo(f"wrote {out} ({picture.note})")


@click.command()
@run_argument()
@click.argument("prompt")
@out("txt2img.png")
@opt(n_option(16, "Number of images.", 10_000))
@opt(SEED)
@opt(GUIDANCE)
@opt(SAMPLER)
@opt(STEPS)
@on_device
def txt2img(run: Path, prompt: str, out: Path, n: int, seed: int, **options) -> None:
    """Draw n images for a prompt with a txt2img run (classifier-free guidance, default w=3)."""
    from genlab.sampling import sample, save_samples

    samples = sample(run, n, seed=seed, prompt=prompt, **options)
    echo(f"wrote {save_samples(samples, out, command_meta())}")


COMMANDS = [forward, denoise, guidance, txt2img]
