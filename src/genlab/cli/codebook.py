"""Pictures of a VQ-VAE's codebook: `genlab codebook` (the library's `genlab.pictures.codebook`)."""

from __future__ import annotations

from pathlib import Path

import click

from genlab.cli.common import command_meta, echo, on_device, opt, out, run_argument
from genlab.options import Option


@click.command()
@run_argument()
@out("usage.png")
@opt(Option("n", "int", 0, "Test images to encode (0 = all).", min=0, max=10**7))
@on_device
def codebook(run: Path, out: Path, n: int) -> None:
    """How often each code of a VQ-VAE is used over the test set, as a bar chart."""
    from genlab.pictures.codebook import plot_usage, usage

    found = usage(run, n)
    echo(f"wrote {plot_usage(found, out, command_meta())} ({found.note()})")


COMMANDS = [codebook]
