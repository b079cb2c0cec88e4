"""The lecture's pictures, drawn from trained runs: each function takes a run directory and
returns a `Picture` (tiles and how to lay them out) or writes a plot, and the CLI commands of the
same names only save what these return. In a notebook:

```python
from genlab import pictures
pictures.interpolate("runs/vae", pairs=4).save("interp.png")
pictures.interpolate("runs/vae").image()   # a PIL image, which Jupyter shows
```
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import torch


class Picture(NamedTuple):
    """Tiles (N, C, H, W) in [0, 1] laid out `nrow` to a row, and what made them.

    Attributes:
        tiles: the images.
        nrow: tiles per row.
        info: PNG metadata (run, seed and the picture's own facts, e.g. timesteps).
        note: one line on what the picture shows (the CLI prints it after writing).
    """

    tiles: torch.Tensor
    nrow: int
    info: dict[str, str] = {}
    note: str = ""

    def grid(self):
        """The grid as a uint8 array (H, W) or (H, W, 3), 2-pixel borders."""
        from genlab.images import make_grid

        return make_grid(self.tiles, nrow=self.nrow)

    def image(self):
        """The grid as a PIL image."""
        from PIL import Image

        return Image.fromarray(self.grid())

    def save(self, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> Path:
        """Write the grid as a PNG with `info` (and `metadata`, e.g. the command) in it."""
        from genlab.images import BORDER, save_png

        grid_meta = {"grid_tile": str(self.tiles.shape[-1]), "grid_padding": str(BORDER)}
        meta = {"software": "genlab", **grid_meta, **self.info, **(metadata or {})}
        return save_png(path, self.grid(), meta)


def strip_of_frames(frames: list[torch.Tensor], rows: int) -> torch.Tensor:
    """The first `rows` samples across all frames: (rows * len(frames), C, H, W), one row each."""
    import torch

    stacked = torch.stack([f[:rows] for f in frames], dim=1)  # (rows, F, C, H, W)
    return stacked.flatten(0, 1)


def frames_strip(frames: list[torch.Tensor], rows: int, info: dict[str, str]) -> Picture:
    """A Picture of the first `rows` samples of an animation across all its frames."""
    return Picture(strip_of_frames(frames, min(rows, len(frames[0]))), len(frames), info)


def frames_gif(
    frames: list[torch.Tensor], path: str | os.PathLike, duration_ms: int, hold: int
) -> Path:
    """An animated GIF of frames (each (n, C, H, W) in [0, 1]) as grids, the last one shown
    `hold` more times."""
    from genlab.images import make_grid, save_gif

    gif = [make_grid(f) for f in frames] + [make_grid(frames[-1])] * hold
    return save_gif(path, gif, duration_ms=duration_ms)
