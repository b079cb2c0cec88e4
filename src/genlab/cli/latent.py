"""Latent-space pictures: `genlab reconstruct`, `interpolate`, `morph`, `arithmetic`, `walk`,
`latent-map` (the library's `genlab.pictures.latent`)."""

from __future__ import annotations

from pathlib import Path

import click

from genlab.cli.common import SEED, command_meta, echo, on_device, opt, out, run_argument
from genlab.options import Option

METHOD = Option("method", "str", "slerp", "Path between latents.", choices=("slerp", "lerp"))
STEPS = Option("steps", "int", 10, "Images per path.", min=2, max=1000)
FROM = Option("from_class", "str", "Sneaker", "Class to start from.", flags=("--from",))
TO = Option("to_class", "str", "Ankle boot", "Class to move towards.", flags=("--to",))


def _save(picture, out: Path) -> None:
    picture.save(out, command_meta())
    echo(f"wrote {out}" + (f" ({picture.note})" if picture.note else ""))


@click.command()
@run_argument()
@out("reconstructions.png")
@opt(Option("n", "int", 16, "Test images.", min=1, max=10_000))
@opt(SEED)
@on_device
def reconstruct(run: Path, out: Path, n: int, seed: int) -> None:
    """Test images (odd rows) above their reconstructions (even rows)."""
    from genlab.pictures.latent import reconstruct as draw

    _save(draw(run, n, seed), out)


@click.command()
@run_argument()
@out("interpolation.png")
@opt(Option("pairs", "int", 6, "Rows (image pairs).", min=1, max=1000))
@opt(STEPS)
@opt(METHOD)
@opt(SEED)
@on_device
def interpolate(run: Path, out: Path, pairs: int, steps: int, method: str, seed: int) -> None:
    """Decode paths between the latents of random pairs of test images (one row each).

    For a GAN (no encoder) the paths join random latents z ~ N(0, I)."""
    from genlab.pictures.latent import interpolate as draw

    _save(draw(run, pairs, steps, method, seed), out)


@click.command()
@run_argument()
@out("morph.png")
@opt(Option("a", "int", None, "Index of the first test image.", min=0, max=10**9))
@opt(Option("b", "int", None, "Index of the second test image.", min=0, max=10**9))
@opt(FROM)
@opt(TO)
@opt(STEPS)
@opt(METHOD)
@opt(SEED)
@on_device
def morph(run: Path, out: Path, a, b, from_class, to_class, steps, method, seed) -> None:
    """A strip morphing one chosen test image into another: real, decoded path, real."""
    from genlab.pictures.latent import morph as draw

    _save(draw(run, a, b, from_class, to_class, steps, method, seed), out)


@click.command()
@run_argument()
@out("arithmetic.png")
@opt(FROM)
@opt(TO)
@opt(Option("n", "int", 6, "Rows (source images).", min=1, max=1000))
@opt(SEED)
@on_device
def arithmetic(run: Path, out: Path, from_class: str, to_class: str, n: int, seed: int) -> None:
    """Latent vector arithmetic: add (mean z of TO - mean z of FROM) with growing strength.

    For an unconditional GAN on Fashion-MNIST the class means are over latents whose samples the
    shipped classifier labels FROM or TO (Radford et al. 2016, section 6.3)."""
    from genlab.pictures.latent import arithmetic as draw

    picture = draw(run, from_class, to_class, n, seed)
    picture.save(out, command_meta())
    echo(f"wrote {out}: {picture.note}")


@click.command("latent-map")
@run_argument()
@out("latent_map.png")
@opt(Option("n", "int", 5000, "Test images to embed.", min=1, max=10**7))
@on_device
def latent_map(run: Path, out: Path, n: int) -> None:
    """A 2-D map of the latent space coloured by class (PCA when the latent is not 2-D)."""
    from genlab.pictures.latent import latent_map as draw

    note = draw(run, out, n, command_meta())
    echo(f"wrote {out} ({note})")


@click.command()
@run_argument()
@out("walk.png")
@opt(Option("dims", "int", 8, "How many latent dimensions to walk.", min=1, max=4096))
@opt(Option("steps", "int", 9, "Images per walk.", min=2, max=1000))
@opt(SEED)
@on_device
def walk(run: Path, out: Path, dims: int, steps: int, seed: int) -> None:
    """Walk along single latent dimensions around a test image's latent (one row each).

    For a GAN (no encoder) the walk starts from a random z ~ N(0, I)."""
    from genlab.pictures.latent import walk as draw

    _save(draw(run, dims, steps, seed), out)


COMMANDS = [reconstruct, interpolate, morph, arithmetic, latent_map, walk]
