"""Image folders as data sets: PNG/JPEG/BMP/WebP files found recursively, decoded once.

Layout, checked in this order:
- `DIR/train/` and `DIR/test/` exist: they are the splits.
- otherwise a deterministic 90/10 split by a hash of each file's relative path, so adding files
  never moves existing ones between splits.
Within a split, immediate sub-folders holding images are the classes (names sorted); without
them the labels are -1. Each image is resized (short side to `size`, Lanczos) and centre-cropped.

Decoded images are cached in `cache_dir()/folders/<sha1>.npz`, keyed on the folder's files
(path, size, mtime), the size and the channels: a second load of an unchanged folder decodes
nothing.
"""

from __future__ import annotations

import hashlib
import os
import struct
import warnings
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from genlab.atomic import atomic_path
from genlab.data.fashion_mnist import cache_dir
from genlab.data.types import ImageData
from genlab.errors import GenlabError

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
# Images above this many pixels are refused: a 50-megapixel RGB image already decodes to 150 MB,
# and a small file declaring a huge size is a decompression bomb.
MAX_PIXELS = 50_000_000
TEST_FRACTION = 10  # 1 in 10 files goes to the test split when there are no train/ test/ folders
_CACHE_VERSION = 1  # bump when the decoding changes, so stale caches are not reused
# What a broken or hostile file can raise inside PIL's decoders.
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    zlib.error,
)


class _TooLarge(Exception):
    pass


def _list_images(directory: Path) -> list[Path]:
    """Image files under `directory`, recursively, sorted; hidden files and folders skipped."""
    found = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [
            Path(root, f) for f in files if not f.startswith(".") and f.lower().endswith(EXTENSIONS)
        ]
    return sorted(found)


def _decode(path: Path, size: int, channels: int) -> np.ndarray:
    """One image file -> (channels, size, size) uint8: short side to `size`, centre crop."""
    with Image.open(path) as im:  # PIL itself raises DecompressionBombError beyond 2x its limit
        if im.width * im.height > MAX_PIXELS:
            raise _TooLarge
        mode = "L" if channels == 1 else "RGB"
        im.draft(mode, (size, size))  # JPEG: decode at a reduced scale, still >= size
        im = ImageOps.exif_transpose(im)
        if im.mode in ("I", "I;16", "I;16B", "I;16L"):  # 16-bit grayscale: keep the top 8 bits
            im = Image.fromarray((np.asarray(im, np.uint32) >> 8).clip(0, 255).astype(np.uint8))
        if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
            im = im.convert("RGBA")  # transparent pixels become white
            im = Image.alpha_composite(Image.new("RGBA", im.size, "white"), im)
        im = im.convert(mode)
        w, h = im.size
        s = min(w, h)
        box = ((w - s) / 2, (h - s) / 2, (w + s) / 2, (h + s) / 2)  # centred square
        im = im.resize((size, size), Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)
        array = np.asarray(im, np.uint8)
    return array[None] if channels == 1 else array.transpose(2, 0, 1)  # (C, size, size)


def _try_decode(path: Path, size: int, channels: int) -> np.ndarray | str:
    """The decoded image, or why it was skipped: "too large" or "broken"."""
    try:
        return _decode(path, size, channels)
    except (_TooLarge, Image.DecompressionBombError):
        return "too large"
    except _DECODE_ERRORS:
        return "broken"


def _cache_key(root: Path, files: list[Path], size: int, channels: int) -> str:
    digest = hashlib.sha1(f"{_CACHE_VERSION}\0{root}\0{size}\0{channels}".encode())
    for f in files:
        stat = f.stat()
        digest.update(
            f"\0{f.relative_to(root).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()
        )
    return digest.hexdigest()


def _load_cache(path: Path) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in ("images", "relpaths", "skipped", "too_large")}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None  # a corrupt cache entry: decode again and overwrite it


def _save_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)
    except OSError as e:
        warnings.warn(
            f"could not write the image cache {path} ({e}); the folder will be decoded "
            "again next time",
            stacklevel=4,
        )


def _decode_folder(
    root: Path, files: list[Path], size: int, channels: int
) -> dict[str, np.ndarray]:
    """Decode every file, or take them from the cache; the result is what the cache holds."""
    cache = cache_dir() / "folders" / f"{_cache_key(root, files, size, channels)}.npz"
    cached = _load_cache(cache)
    if cached is not None:
        return cached
    # PIL releases the GIL while decoding and resizing, so threads use every core
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        results = list(pool.map(lambda f: _try_decode(f, size, channels), files))
    images, relpaths, skipped, too_large = [], [], [], []
    for f, result in zip(files, results, strict=True):
        rel = f.relative_to(root).as_posix()
        if isinstance(result, np.ndarray):
            images.append(result)
            relpaths.append(rel)
        else:
            (too_large if result == "too large" else skipped).append(rel)
    arrays = {
        "images": np.stack(images) if images else np.zeros((0, channels, size, size), np.uint8),
        "relpaths": np.array(relpaths, dtype=str),
        "skipped": np.array(skipped, dtype=str),
        "too_large": np.array(too_large, dtype=str),
    }
    _save_cache(cache, arrays)
    return arrays


def _in_test_split(relpath: str, seed: int) -> bool:
    """A stable 1-in-`TEST_FRACTION` choice from the relative path alone."""
    h = hashlib.sha1(f"{seed}\0{relpath}".encode()).digest()
    return int.from_bytes(h[:8], "big") % TEST_FRACTION == 0


def _split_and_class(relpath: str, has_splits: bool, seed: int) -> tuple[str | None, str | None]:
    """The split ("train", "test" or None = neither) and class folder (or None) of a file."""
    parts = relpath.split("/")
    if has_splits:
        split, parts = (parts[0], parts[1:]) if parts[0] in ("train", "test") else (None, parts)
    else:
        split = "test" if _in_test_split(relpath, seed) else "train"
    return split, (parts[0] if len(parts) > 1 else None)  # the first folder below the split


def load_folder(
    path: str | os.PathLike | None,
    split: str = "train",
    size: int = 32,
    channels: int = 1,
    seed: int = 0,
) -> ImageData:
    """Load one split of a folder of images, decoded once and cached on disk.

    Args:
        path: the folder, searched recursively for .png, .jpg, .jpeg, .bmp and .webp files.
        split: "train" or "test" (the `train/` and `test/` sub-folders, else a 90/10 hash split).
        size: output side in pixels: the short side is resized to it, then centre-cropped.
        channels: 1 (grayscale) or 3 (RGB).
        seed: salts the hash split (ignored with `train/` and `test/` folders).

    Returns:
        `ImageData` with images (N, channels, size, size) uint8, labels (N,) int64 (the index
        in the sorted class folder names, or -1 without class folders) and the class names.

    Warns:
        UserWarning: once, counting the files skipped as undecodable or larger than
            `MAX_PIXELS`.

    Raises:
        GenlabError: bad arguments, a missing or empty folder, or an empty split.
    """
    if path is None:
        raise GenlabError("the folder data set needs a path: pass the folder of images")
    if split not in ("train", "test"):
        raise GenlabError(f"unknown split {split!r}: use 'train' or 'test'")
    if channels not in (1, 3):
        raise GenlabError(f"channels must be 1 (grayscale) or 3 (RGB), not {channels}")
    if not isinstance(size, int) or size < 1:
        raise GenlabError(f"image size must be a positive number of pixels, not {size!r}")
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise GenlabError(f"{root}: no such folder; pass a folder of PNG or JPEG images")
    files = _list_images(root)
    if not files:
        raise GenlabError(
            f"{root}: no images found (looked recursively for {', '.join(EXTENSIONS)} files)"
        )
    has_splits = (root / "train").is_dir() and (root / "test").is_dir()
    decoded = _decode_folder(root, files, size, channels)
    _warn_skipped(root, len(files), decoded["skipped"], decoded["too_large"])

    where = [_split_and_class(str(r), has_splits, seed) for r in decoded["relpaths"]]
    class_names = tuple(sorted({c for s, c in where if s is not None and c is not None}))
    index = {name: i for i, name in enumerate(class_names)}
    labels = np.array([index.get(c, -1) for _, c in where], dtype=np.int64)
    mask = np.array([s == split for s, _ in where], dtype=bool)
    loose = int((mask & (labels == -1)).sum())
    if class_names and loose:  # images beside the class folders have no label: leave them out
        warnings.warn(
            f"ignored {loose} images in {root} outside the class folders {list(class_names)}",
            stacklevel=2,
        )
        mask &= labels != -1
    if not mask.any():
        raise GenlabError(
            f"{root}: the {split} split has no images; add more images"
            + ("" if has_splits else " (1 in 10 goes to test) or make train/ and test/ folders")
        )
    return ImageData(
        torch.from_numpy(decoded["images"][mask]),  # (N, C, size, size) uint8
        torch.from_numpy(labels[mask]),  # (N,)
        class_names,
    )


def _warn_skipped(root: Path, total: int, skipped: np.ndarray, too_large: np.ndarray) -> None:
    n = len(skipped) + len(too_large)
    if not n:
        return
    reasons = []
    if len(skipped):
        reasons.append(f"{len(skipped)} could not be decoded (e.g. {skipped[0]})")
    if len(too_large):
        reasons.append(
            f"{len(too_large)} larger than {MAX_PIXELS / 1e6:g} megapixels, refused as possible "
            f"decompression bombs (e.g. {too_large[0]})"
        )
    warnings.warn(f"skipped {n} of {total} files in {root}: {'; '.join(reasons)}", stacklevel=3)


def read_images(
    path: str | os.PathLike, size: int, channels: int
) -> tuple[list[str], torch.Tensor]:
    """Every image of a folder (recursively, sorted), decoded as training decodes folders.

    Not a data set: no splits, no classes and no cache; for commands that process a user's
    images one by one (`genlab translate`).

    Args:
        path: the folder.
        size: output side in pixels (short side resized, centre-cropped).
        channels: 1 (grayscale) or 3 (RGB).

    Returns:
        The files' paths relative to `path` and their images (N, channels, size, size) uint8.

    Warns:
        UserWarning: once, counting undecodable or too large files (skipped).

    Raises:
        GenlabError: no such folder, or no decodable image in it.
    """
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise GenlabError(f"{root}: no such folder; pass a folder of PNG or JPEG images")
    files = _list_images(root)
    results = [_try_decode(f, size, channels) for f in files]
    relpaths = [f.relative_to(root).as_posix() for f in files]
    ok = [i for i, r in enumerate(results) if isinstance(r, np.ndarray)]
    failed = [(relpaths[i], r) for i, r in enumerate(results) if isinstance(r, str)]
    skipped = np.array([p for p, why in failed if why == "broken"], dtype=str)
    too_large = np.array([p for p, why in failed if why == "too large"], dtype=str)
    if not ok:
        unreadable = f", {len(files)} unreadable" if files else ""
        raise GenlabError(
            f"{root}: no readable images (looked recursively for {', '.join(EXTENSIONS)} "
            f"files{unreadable})"
        )
    _warn_skipped(root, len(files), skipped, too_large)
    images = torch.from_numpy(np.stack([results[i] for i in ok]))  # (N, C, size, size)
    return [relpaths[i] for i in ok], images
