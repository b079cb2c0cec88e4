"""`genlab data fetch|info`: get and inspect data sets."""

from __future__ import annotations

from pathlib import Path

import click

from genlab.cli.common import echo
from genlab.errors import GenlabError


@click.group(no_args_is_help=True)
def data() -> None:
    """Get and inspect data sets."""


@data.command("fetch")
@click.argument("name", default="fashion-mnist")
@click.option("--dest", type=click.Path(path_type=Path), help="Directory (default: user cache).")
@click.option("--url", default=None, help="Mirror base URL.")
def fetch(name: str, dest: Path | None, url: str | None) -> None:
    """Download a data set and verify its published checksums."""
    from genlab.data.fashion_mnist import OFFICIAL_URL, fetch_fashion_mnist

    if name != "fashion-mnist":
        raise GenlabError(f"unknown data set {name!r}: only fashion-mnist can be fetched")
    where = fetch_fashion_mnist(str(dest) if dest else None, base_url=url or OFFICIAL_URL)
    echo(f"fashion-mnist ready in {where}")


@data.command("info")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Fashion-MNIST IDX directory.")
def info(data_dir: Path | None) -> None:
    """Where Fashion-MNIST is found and what it holds."""
    from genlab.data.fashion_mnist import find_data_dir, load_fashion_mnist

    where = find_data_dir(str(data_dir) if data_dir else None)
    for split in ("train", "test"):
        d = load_fashion_mnist(split, data_dir=str(where))
        echo(f"{split}: {len(d)} images {tuple(d.shape)} from {where}")


COMMANDS = [data]
