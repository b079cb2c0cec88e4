"""Two domains of images for unpaired translation (CycleGAN): each a `DataSpec`, e.g. one class
of Fashion-MNIST or an image folder."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch

from genlab.data import DataSpec, ImageData, load_data
from genlab.errors import GenlabError


class Domains(NamedTuple):
    """The two domains' images, one split of each."""

    a: ImageData
    b: ImageData


def domain_label(spec: DataSpec) -> str:
    """A short name for a domain: its classes, else its folder's name."""
    if spec.classes:
        return "+".join(spec.classes)
    return Path(spec.path).name if spec.name == "folder" and spec.path else spec.name


def load_domains(spec_a: DataSpec, spec_b: DataSpec, split: str = "train") -> Domains:
    """Load one split of both domains and check they can be translated into each other.

    Raises:
        GenlabError: a domain is empty, both are the same images, or their shapes differ.
    """
    a, b = load_data(spec_a, split), load_data(spec_b, split)
    for name, spec, data in (("A", spec_a, a), ("B", spec_b, b)):
        if len(data) == 0:
            raise GenlabError(f"domain {name} ({domain_label(spec)}) has no {split} images")
    if a.images.shape == b.images.shape and torch.equal(a.images, b.images):
        raise GenlabError(
            f"domains A and B are the same images ({domain_label(spec_a)}): "
            "choose two different classes or folders"
        )
    if a.shape != b.shape:
        raise GenlabError(
            f"domain A's images are {a.shape} (C, H, W) and B's {b.shape}: give both the same "
            "--size and --channels"
        )
    return Domains(a, b)
