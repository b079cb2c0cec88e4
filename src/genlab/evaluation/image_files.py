"""Images made by anything, for `genlab eval --images`: a folder of image files or one grid.

A grid is a picture of equal tiles separated by a border (`padding` pixels around and between
tiles, as `genlab.images.make_grid` draws). Grids written by genlab record their tile size and
padding in the PNG metadata, so they need no options; for other grids pass the tile size.
Every image is converted to the feature network's channels and, when its size differs,
resized with a box (area) filter.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from genlab.errors import GenlabError

SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def _convert(image, channels: int, side: int, source: Path) -> np.ndarray:
    """A PIL image -> (C, side, side) uint8."""
    from PIL import Image

    image = image.convert("L" if channels == 1 else "RGB")
    if image.size != (side, side):
        image = image.resize((side, side), Image.Resampling.BOX)
    arr = np.asarray(image, dtype=np.uint8)
    return arr[None] if channels == 1 else arr.transpose(2, 0, 1)


def _open(path: Path):
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(path)
        image.load()
        return image
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        raise GenlabError(f"{path}: not a readable image ({e})") from None


def grid_layout(path: Path, tile: int | None, padding: int | None) -> tuple[int, int]:
    """(tile, padding) of a grid: given, or read from the PNG metadata genlab writes."""
    from genlab.images import read_png_metadata

    meta = read_png_metadata(path) if path.suffix.lower() == ".png" else {}
    if tile is None:
        if "grid_tile" not in meta:
            raise GenlabError(
                f"{path}: a single image is read as a grid of samples, but it does not record "
                "its tile size: pass --tile (the side of one sample in pixels) and --padding"
            )
        tile = int(meta["grid_tile"])
    if padding is None:
        padding = int(meta.get("grid_padding", 0))
    if tile < 1 or padding < 0:
        raise GenlabError(f"--tile must be >= 1 and --padding >= 0, got {tile} and {padding}")
    return tile, padding


def split_grid(grid: np.ndarray, tile: int, padding: int) -> list[np.ndarray]:
    """Cut a (H, W) or (H, W, 3) grid into its tiles, row by row.

    Trailing uniform tiles (the blank cells of an unfilled last row) are dropped.
    """
    H, W = grid.shape[:2]
    rows, cols = (H - padding) // (tile + padding), (W - padding) // (tile + padding)
    if rows < 1 or cols < 1:
        raise GenlabError(f"a {W}x{H} grid holds no {tile}-pixel tile with padding {padding}")
    tiles = []
    for r in range(rows):
        for c in range(cols):
            top, left = padding + r * (tile + padding), padding + c * (tile + padding)
            tiles.append(grid[top : top + tile, left : left + tile])
    while tiles and tiles[-1].min() == tiles[-1].max():
        tiles.pop()
    return tiles


def load_images(
    path: str | Path,
    shape: tuple[int, int, int],
    *,
    tile: int | None = None,
    padding: int | None = None,
    limit: int | None = None,
) -> Tensor:
    """Read images for evaluation.

    Args:
        path: a folder (every image file in it and its sub-folders, in sorted order) or one
            image file holding a grid.
        shape: (C, H, W) the feature network expects; H must equal W.
        tile, padding: the grid layout (None: from genlab's PNG metadata).
        limit: keep at most this many images.

    Returns:
        (N, C, H, W) uint8.
    """
    from PIL import Image

    path = Path(path)
    channels, side, _ = shape
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file())
        if limit is not None:
            files = files[:limit]
        if not files:
            raise GenlabError(f"{path}: holds no image files ({', '.join(sorted(SUFFIXES))})")
        arrays = [_convert(_open(f), channels, side, f) for f in files]
    elif path.is_file():
        image = _open(path)  # first: a file that is not an image says so, whatever its layout
        tile, padding = grid_layout(path, tile, padding)
        grid = np.asarray(image.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)
        tiles = split_grid(grid, tile, padding)[:limit]
        if not tiles:
            raise GenlabError(f"{path}: the grid has only blank tiles")
        arrays = [_convert(Image.fromarray(t), channels, side, path) for t in tiles]
    else:
        raise GenlabError(f"{path}: no such file or folder of images")
    return torch.from_numpy(np.stack(arrays))
