"""Image grids and PNG files that remember how they were made.

Grids follow one convention everywhere: tiles at the model's resolution (28 px for
Fashion-MNIST) separated by a 2-pixel border. Every PNG carries tEXt metadata (the command, the
seed and the run that made it) so a picture can always be traced back and reproduced.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from genlab.atomic import atomic_path

if TYPE_CHECKING:
    import torch

BORDER = 2


def make_grid(
    x: torch.Tensor, nrow: int | None = None, padding: int = BORDER, pad_value: float = 1.0
) -> np.ndarray:
    """Tile images into one picture.

    Args:
        x: (N, C, H, W) floats in [0, 1], C in {1, 3}.
        nrow: tiles per row; default the ceiling of sqrt(N).
        padding: border in pixels around and between tiles.
        pad_value: border intensity in [0, 1].

    Returns:
        (H', W') uint8 for grayscale or (H', W', 3) uint8 for RGB.
    """
    import torch

    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"make_grid expects (N, 1|3, H, W) images, got shape {tuple(x.shape)}")
    n, c, h, w = x.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    ncol = math.ceil(n / nrow)
    grid = torch.full(
        (c, ncol * (h + padding) + padding, nrow * (w + padding) + padding), float(pad_value)
    )
    for i, img in enumerate(x.detach().float().cpu().clamp(0, 1)):
        r, q = divmod(i, nrow)
        top, left = padding + r * (h + padding), padding + q * (w + padding)
        grid[:, top : top + h, left : left + w] = img
    arr = (grid * 255.0 + 0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    return arr[..., 0] if c == 1 else arr


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """One image (C, H, W) in [0, 1] -> (H, W) or (H, W, 3) uint8."""
    arr = (x.detach().float().cpu().clamp(0, 1) * 255.0 + 0.5).byte().permute(1, 2, 0).numpy()
    return arr[..., 0] if arr.shape[-1] == 1 else arr


def save_png(
    path: str | os.PathLike, image: np.ndarray, metadata: dict[str, str] | None = None
) -> Path:
    """Write a uint8 image as PNG atomically, with `metadata` as tEXt chunks.

    Returns:
        The path written.
    """
    from PIL import Image, PngImagePlugin

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    info = PngImagePlugin.PngInfo()
    for key, value in (metadata or {}).items():
        info.add_text(str(key), str(value))
    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(image)).save(tmp, format="PNG", pnginfo=info)
    return path


def read_png_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The tEXt metadata of a PNG written by `save_png`."""
    from PIL import Image

    with Image.open(path) as im:
        return {k: v for k, v in im.text.items()}


def save_gif(path: str | os.PathLike, frames: list[np.ndarray], duration_ms: int = 80) -> Path:
    """Write uint8 frames as an animated GIF (looping), atomically."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(np.ascontiguousarray(f)) for f in frames]
    with atomic_path(path) as tmp:
        images[0].save(
            tmp, format="GIF", save_all=True, append_images=images[1:], duration=duration_ms, loop=0
        )
    return path
