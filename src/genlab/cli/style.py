"""Pictures of a StyleGAN run: `genlab style-mix`, `truncation`, `noise-variation`,
`path-length` (the library's `genlab.pictures.style`)."""

from __future__ import annotations

from pathlib import Path

import click

from genlab.cli.common import SEED, command_meta, echo, n_option, on_device, opt, out, run_argument
from genlab.options import Option

PSI = Option("psi", "float", 1.0, "Truncation psi: 0 the mean w, 1 no truncation.", min=0.0,
             max=2.0)  # fmt: skip


@click.command("style-mix")
@run_argument()
@out("style_mix.png")
@opt(Option("rows", "int", 4, "Row sources (their coarse styles).", min=1, max=64))
@opt(Option("columns", "int", 6, "Column sources (their fine styles).", min=1, max=64))
@opt(Option("coarse", "int", None, "Layers taken from the row source (default: those of the "
            "two lowest resolutions).", min=0, max=64))  # fmt: skip
@opt(PSI)
@opt(SEED)
@on_device
def style_mix(run: Path, out: Path, rows, columns, coarse, psi, seed) -> None:
    """The style-mixing grid: coarse styles from each row's seed, fine from each column's."""
    from genlab.pictures.style import style_mix as draw

    picture = draw(run, rows, columns, coarse, psi, seed)
    picture.save(out, command_meta())
    echo(f"wrote {out} ({picture.note})")


@click.command()
@run_argument()
@out("truncation.png")
@opt(n_option(6, "Rows: one seed each.", 256))
@opt(Option("psi", "floats", None, "The psi of each column (default 0, 0.125, ..., 1).", min=0.0,
            max=2.0))  # fmt: skip
@opt(SEED)
@on_device
def truncation(run: Path, out: Path, n, psi, seed) -> None:
    """The truncation sweep: psi from 0 (the mean w) to 1, one row per seed."""
    from genlab.pictures.style import truncation as draw

    picture = draw(run, n, tuple(psi) if psi else None, seed)
    picture.save(out, command_meta())
    echo(f"wrote {out} ({picture.note})")


@click.command("noise-variation")
@run_argument()
@out("noise_variation.png")
@opt(n_option(4, "Rows: one seed (one w) each.", 256))
@opt(Option("variations", "int", 6, "Noise draws shown per row.", min=1, max=64))
@opt(Option("draws", "int", 64, "Noise draws behind the std map.", min=2, max=10_000))
@opt(SEED)
@on_device
def noise_variation(run: Path, out: Path, n, variations, draws, seed) -> None:
    """Same w, different per-pixel noise, and the per-pixel std map of what noise changes."""
    from genlab.pictures.style import noise_variation as draw

    result = draw(run, n, variations, draws, seed)
    result.picture.save(out, command_meta())
    echo(f"wrote {out} ({result.picture.note})")


@click.command("path-length")
@run_argument()
@out("interpolation_zw.png", "The z vs w interpolation picture.")
@opt(n_option(1000, "Pairs of samples behind each PPL.", 1_000_000))
@opt(Option("eps", "float", 1e-4, "The interpolation step.", min=0.0, min_open=True, max=0.1))
@opt(Option("features", "path", None, "A classifier run for data other than Fashion-MNIST."))
@opt(SEED)
@on_device
def path_length(run: Path, out: Path, n, eps, features, seed) -> None:
    """Perceptual path length in z and in w, and the interpolations in each.

    PPL (Karras et al. 2019) is the mean squared feature distance between images at t and
    t + eps along an interpolation, divided by eps^2: lower is a smoother latent space. The
    features are the feature network's (genlab eval's), not the paper's LPIPS."""
    from genlab.pictures.style import path_length as measure

    result = measure(run, n, eps, seed, features=features)
    result.picture.save(out, {**command_meta(), "ppl_z": f"{result.ppl_z:.4g}",
                              "ppl_w": f"{result.ppl_w:.4g}"})  # fmt: skip
    echo(
        f"perceptual path length over {result.n} pairs: z {result.ppl_z:.4g}, w "
        f"{result.ppl_w:.4g}; wrote {out} ({result.picture.note})"
    )


COMMANDS = [style_mix, truncation, noise_variation, path_length]
