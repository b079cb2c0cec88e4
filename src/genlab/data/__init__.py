"""Data sets held in memory as uint8 tensors.

Every data set is an `ImageData`: images (N, C, H, W) uint8, labels (N,) int64 (-1 when the
data set has no labels) and the class names. The training loop turns a batch of it into a
`Batch` of floats in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import torch


class Batch(NamedTuple):
    """One training batch: x (B, C, H, W) float in [0, 1]; y (B,) int64 class ids (-1 if none)."""

    x: torch.Tensor
    y: torch.Tensor


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


def load_data(spec: DataSpec, split: str = "train") -> ImageData:
    """Load one split ("train" or "test") of the data set a `DataSpec` names."""
    if spec.name == "fashion-mnist":
        from genlab.data.fashion_mnist import load_fashion_mnist

        data = load_fashion_mnist(split, data_dir=spec.path)
    elif spec.name == "folder":
        from genlab.data.folder import load_folder

        data = load_folder(spec.path, split=split, size=spec.size or 32, channels=spec.channels)
    else:
        from genlab.errors import GenlabError

        raise GenlabError(f"unknown data set {spec.name!r}: use 'fashion-mnist' or a folder path")
    if spec.classes is not None:
        data = select_classes(data, spec.classes)
    if spec.limit is not None and split == "train":
        data = ImageData(data.images[: spec.limit], data.labels[: spec.limit], data.class_names)
    return data


def _normalise(name: str) -> str:
    return " ".join(name.replace("-", " ").replace("_", " ").lower().split())


def select_classes(data: ImageData, classes: tuple[str, ...]) -> ImageData:
    """The images of `data` whose class is one of `classes` (names as in `data.class_names`,
    case-insensitive, "ankle-boot" matching "Ankle boot"); labels and class names are kept.

    Raises:
        GenlabError: the data has no classes, or a name is not one of them.
    """
    import torch

    from genlab.errors import GenlabError

    known = {_normalise(c): i for i, c in enumerate(data.class_names)}
    ids = []
    for name in classes:
        if _normalise(name) not in known:
            valid = ", ".join(repr(c) for c in data.class_names)
            if not valid:
                raise GenlabError(
                    f"class {name!r} asked for, but the data has no classes: put the images in "
                    "class sub-folders"
                )
            raise GenlabError(f"unknown class {name!r}: use one of {valid}")
        ids.append(known[_normalise(name)])
    keep = torch.isin(data.labels, torch.tensor(ids))
    return ImageData(data.images[keep], data.labels[keep], data.class_names)
