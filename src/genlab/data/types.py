"""The data types every part of genlab passes around: a split in memory (`ImageData`), a
training batch (`Batch`, with the `Shard` that says which rows of the global batch this process
holds) and the description of a data set stored in config.json (`DataSpec`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import torch


class Shard(NamedTuple):
    """Which rows of a global batch this process holds: rank, rank + world, rank + 2 world, ...

    Under data parallelism each of `world` processes trains on its rows of the same global
    batch. Random draws of a training step (noise, timesteps, dropped labels) go through these
    methods: each process draws for the whole global batch and keeps its rows, so N processes
    draw exactly what one process would, and their global RNGs stay equal.
    """

    rank: int = 0
    world: int = 1

    def _rows(self, draw, shape: tuple[int, ...]) -> torch.Tensor:
        if self.world == 1:
            return draw(tuple(shape))
        return draw((shape[0] * self.world, *shape[1:]))[self.rank :: self.world]

    def randn(self, shape, *, device=None, dtype=None) -> torch.Tensor:
        """N(0, 1) noise of `shape` (B_local, ...), from the global RNG of `device`."""
        import torch

        return self._rows(lambda s: torch.randn(s, device=device, dtype=dtype), shape)

    def rand(self, shape, *, device=None) -> torch.Tensor:
        """U(0, 1) noise of `shape` (B_local, ...)."""
        import torch

        return self._rows(lambda s: torch.rand(s, device=device), shape)

    def randint(self, low: int, high: int, shape, *, device=None) -> torch.Tensor:
        """Integers in [low, high) of `shape` (B_local, ...)."""
        import torch

        return self._rows(lambda s: torch.randint(low, high, s, device=device), shape)

    def mean_std(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and unbiased standard deviation over dim 0 of the global batch, from this
        process's rows x (B_local, ...) (statistics a model keeps, not differentiated)."""
        if self.world == 1:
            return x.mean(0), x.std(0)
        import torch
        import torch.distributed as dist

        with torch.no_grad():
            n = x.shape[0] * self.world
            total = x.sum(0)
            dist.all_reduce(total)
            mean = total / n
            squares = (x - mean).square().sum(0)
            dist.all_reduce(squares)
            return mean, (squares / max(n - 1, 1)).sqrt()


class Batch(NamedTuple):
    """One training batch: x (B, C, H, W) float in [0, 1]; y (B,) int64 class ids (-1 if none);
    `shard`: which rows of the global batch these are (draw the step's noise through it);
    `progress`: the fraction of the training budget done, in [0, 1], for schedules inside a loss
    (the VAE's KL warm-up)."""

    x: torch.Tensor
    y: torch.Tensor
    shard: Shard = Shard()
    progress: float = 1.0


class ImageData(NamedTuple):
    """A whole split in memory: images (N, C, H, W) uint8, labels (N,) int64."""

    images: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(self.images.shape[1:])

    def batch(self, index: torch.Tensor) -> Batch:
        """The images at `index` as floats in [0, 1]."""
        return Batch(self.images[index].float().div_(255.0), self.labels[index])


@dataclass(frozen=True)
class DataSpec:
    """Which data set to load; stored in a run's config.json so a run can reload its data.

    Attributes:
        name: "fashion-mnist" or "folder".
        path: the IDX directory (fashion-mnist; None = the usual search order) or image folder.
        size: image side in pixels for folders (resized and centre-cropped); None keeps 28.
        channels: 1 (grayscale) or 3 (RGB) for folders.
        limit: use only the first `limit` training images (tiny runs and tests); None = all.
        classes: keep only the images of these classes (names, case-insensitive), in both
            splits and before `limit`; None = all. A CycleGAN domain is a spec with one class.
    """

    name: str = "fashion-mnist"
    path: str | None = None
    size: int | None = None
    channels: int = 1
    limit: int | None = None
    classes: tuple[str, ...] | None = None

    def __post_init__(self):
        if isinstance(self.classes, str | list):  # a JSON list, or one name given bare
            names = (self.classes,) if isinstance(self.classes, str) else tuple(self.classes)
            object.__setattr__(self, "classes", names)
