"""Data sets held in memory as uint8 tensors.

Every data set is an `ImageData`: images (N, C, H, W) uint8, labels (N,) int64 (-1 when the
data set has no labels) and the class names. The training engine turns a batch of it into a
`Batch` of floats in [0, 1]. The types live in `genlab.data.types` (so that the readers of
each format import them without importing this package's loaders back).
"""

from __future__ import annotations

from genlab.data.types import Batch, DataSpec, ImageData, Shard

__all__ = [
    "Batch",
    "DataSpec",
    "ImageData",
    "Shard",
    "binarized",
    "data_size",
    "image_sets",
    "image_spec",
    "load_data",
    "require_batches",
    "select_classes",
]


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


BINARIZE_SEED = 0
"""The seed of the fixed binarization of test sets: every run and family scores the same bits."""


def binarized(images, seed: int = BINARIZE_SEED):
    """Fixed binarization of uint8 images (N, C, H, W): each pixel is 255 with its intensity as
    the probability, else 0, from a seeded generator (the test-set convention of binarized
    MNIST likelihoods; training binarizes afresh every step instead)."""
    import torch

    u = torch.rand(images.shape, generator=torch.Generator().manual_seed(seed))
    return (u * 255 < images.float()).to(torch.uint8) * 255


def image_sets(data) -> list[ImageData]:
    """The image sets of a family's data: [data] for one ImageData, the parts of a tuple of
    them (a CycleGAN's Domains)."""
    if isinstance(data, ImageData):
        return [data]
    return list(data) if isinstance(data, tuple | list) else []  # no images: an environment


def data_size(data) -> int:
    """Images of one epoch: the set's, or the larger one's of several (two domains); 0 for data
    without images (an agent's environment)."""
    return max((len(d) for d in image_sets(data)), default=0)


def require_batches(data, batch_size: int) -> None:
    """Refuse data with a set smaller than one batch (one line: what to lower)."""
    smallest = min((len(d) for d in image_sets(data)), default=None)
    if smallest is not None and smallest < batch_size:
        from genlab.errors import GenlabError

        raise GenlabError(
            f"the data has {smallest} images, fewer than one batch of {batch_size}; "
            "lower --batch-size"
        )


def image_spec(
    data: str = "fashion-mnist",
    data_dir: str | None = None,
    size: int = 32,
    channels: int = 1,
    limit: int | None = None,
    classes: tuple[str, ...] | None = None,
) -> DataSpec:
    """The DataSpec of the data options: "fashion-mnist" (read from `data_dir` or the usual
    places) or a folder of images (resized and centre-cropped to `size`, `channels` 1 or 3).

    Raises:
        GenlabError: `data` is neither "fashion-mnist" nor a folder.
    """
    from pathlib import Path

    if str(data) == "fashion-mnist":
        where = str(data_dir) if data_dir is not None else None
        return DataSpec("fashion-mnist", where, limit=limit, classes=classes)
    if not Path(data).is_dir():
        from genlab.errors import GenlabError

        raise GenlabError(f"--data {data}: not 'fashion-mnist' and not a folder of images")
    return DataSpec("folder", str(Path(data).resolve()), size, channels, limit, classes)


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
