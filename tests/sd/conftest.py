"""A tiny Stable Diffusion on disk, as a diffusers folder, a single file and an inpainting model."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import NamedTuple

import pytest
import tiny_sd


class SingleFile(NamedTuple):
    checkpoint: Path
    config: Path
    """The folder's configs and tokenizer without weights: what a single file needs beside it."""


@pytest.fixture(scope="session")
def sd_folder(tmp_path_factory) -> Path:
    return tiny_sd.build_folder(tmp_path_factory.mktemp("sd") / "tiny-sd")


@pytest.fixture(scope="session")
def sd_single_file(sd_folder, tmp_path_factory) -> SingleFile:
    from diffusers import StableDiffusionPipeline
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("sd-single")
    pipe = StableDiffusionPipeline.from_pretrained(sd_folder, local_files_only=True)
    checkpoint = root / "tiny-sd.safetensors"
    save_file(tiny_sd.ldm_state_dict(pipe.unet, pipe.vae, pipe.text_encoder), checkpoint)
    config = root / "configs"
    shutil.copytree(sd_folder, config, ignore=shutil.ignore_patterns("*.safetensors"))
    return SingleFile(checkpoint, config)


@pytest.fixture(scope="session")
def sd_inpaint_folder(tmp_path_factory) -> Path:
    return tiny_sd.build_folder(tmp_path_factory.mktemp("sd") / "tiny-sd-inpaint", in_channels=9)


@pytest.fixture(scope="session")
def sd_checked_folder(tmp_path_factory) -> Path:
    """A tiny SD whose safety checker flags every picture."""
    return tiny_sd.build_folder(tmp_path_factory.mktemp("sd") / "checked", flagging_checker=True)


@pytest.fixture(scope="session")
def photo(tmp_path_factory) -> Path:
    """A 25x21 RGB picture (odd sizes, not the model's) and a mask with a white box."""
    import numpy as np
    from PIL import Image

    root = tmp_path_factory.mktemp("photos")
    y, x = np.mgrid[0:21, 0:25]
    rgb = np.stack([x * 10, y * 12, (x + y) * 5], -1).astype(np.uint8)
    Image.fromarray(rgb).save(root / "photo.png")
    mask = np.zeros((21, 25), np.uint8)
    mask[4:12, 6:18] = 255
    Image.fromarray(mask).save(root / "mask.png")
    return root / "photo.png"
