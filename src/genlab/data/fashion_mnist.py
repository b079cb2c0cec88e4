"""Fashion-MNIST from its four official IDX files, validated strictly.

Xiao, Rasul & Vollgraf, "Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine Learning
Algorithms", 2017. 60,000 train + 10,000 test grayscale 28x28 images in 10 classes.

The files are looked up (`find_data_dir`) in: an explicit directory, `$GENLAB_DATA`, the system
package's `/usr/share/datasets/fashion-mnist`, then the user cache, where
`fetch_fashion_mnist` downloads them. Every malformed file is a one-line `GenlabError` naming
the file, never a traceback from gzip or struct.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.client
import math
import os
import struct
import sys
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from genlab.atomic import atomic_path
from genlab.data.types import ImageData
from genlab.errors import GenlabError

CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

# split -> (images file, labels file), without the optional ".gz"
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")  # the dataset-fashion-mnist package
OFFICIAL_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
OFFICIAL_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}

_FIX = "delete it and run `genlab data fetch fashion-mnist`"
_INSTALL = "run `genlab data fetch fashion-mnist` or `apt-get install dataset-fashion-mnist`"
# IDX type code -> element type; multi-byte types are big-endian (LeCun's IDX format)
_IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
# Refuse headers declaring more than 2 GiB: Fashion-MNIST's largest file holds 47 MB, so a
# bigger size means a corrupt header, and we must not try to allocate it.
_MAX_IDX_BYTES = 1 << 31


def cache_dir() -> Path:
    """genlab's user cache: `$XDG_CACHE_HOME/genlab`, or `~/.cache/genlab`."""
    base = os.environ.get("XDG_CACHE_HOME") or ""
    return (Path(base) if os.path.isabs(base) else Path.home() / ".cache") / "genlab"


def _find_file(directory: Path, stem: str) -> Path | None:
    """`stem` or `stem.gz` in `directory` (uncompressed first: it reads faster)."""
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def _missing(directory: Path) -> list[str]:
    return [stem for pair in FILES.values() for stem in pair if not _find_file(directory, stem)]


def find_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The directory holding the four Fashion-MNIST IDX files (each `.gz` or uncompressed).

    Looks in order at: `data_dir`, `$GENLAB_DATA`, `/usr/share/datasets/fashion-mnist`, then
    `cache_dir()/fashion-mnist`. A directory given explicitly (argument or environment) must
    hold all four files: a missing one is an error, not a silent fall-through.

    Raises:
        GenlabError: an explicit directory lacks a file, or no directory holds the data.
    """
    explicit = [(data_dir, "")] if data_dir is not None else []
    if os.environ.get("GENLAB_DATA"):
        explicit.append((os.environ["GENLAB_DATA"], " (from $GENLAB_DATA)"))
    if explicit:
        given, origin = explicit[0]
        directory = Path(given).expanduser()
        if not directory.is_dir():
            raise GenlabError(
                f"{directory}{origin}: no such directory; point it at the folder holding the 4 "
                f"Fashion-MNIST IDX files, or {_INSTALL}"
            )
        missing = _missing(directory)
        if missing:
            raise GenlabError(
                f"{directory}{origin}: missing {missing[0]}[.gz] "
                f"({len(missing)} of 4 Fashion-MNIST files missing); {_INSTALL}"
            )
        return directory
    places = [SYSTEM_DIR, cache_dir() / "fashion-mnist"]
    for directory in places:
        if directory.is_dir() and not _missing(directory):
            return directory
    raise GenlabError(
        f"Fashion-MNIST not found (looked in {', '.join(map(str, places))}): {_INSTALL}, "
        "or set GENLAB_DATA to a folder holding the 4 IDX files"
    )


def _read_exact(f: BinaryIO, n: int) -> bytearray:
    """Up to `n` bytes from `f` (fewer only at end of file), into one writable buffer."""
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = f.readinto(view[got:])
        if not k:
            break
        got += k
    del view
    if got < n:
        del buf[got:]
    return buf


def _parse_idx(f: BinaryIO, path: Path) -> np.ndarray:
    header = _read_exact(f, 4)
    if len(header) < 4:
        raise GenlabError(f"{path}: only {len(header)} bytes, too short for an IDX file; {_FIX}")
    if header[0] != 0 or header[1] != 0:
        raise GenlabError(
            f"{path}: not an IDX file (magic number 0x{header.hex()} should start with two zero "
            f"bytes); {_FIX}"
        )
    code, ndim = header[2], header[3]
    if code not in _IDX_DTYPES:
        raise GenlabError(
            f"{path}: unknown IDX data type code 0x{code:02x} (known: 0x08 uint8, 0x09 int8, "
            f"0x0b int16, 0x0c int32, 0x0d float32, 0x0e float64); {_FIX}"
        )
    dtype = _IDX_DTYPES[code]
    raw_dims = _read_exact(f, 4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise GenlabError(f"{path}: the header is truncated (declares {ndim} dimensions); {_FIX}")
    dims = struct.unpack(f">{ndim}I", raw_dims)
    shape = "x".join(map(str, dims))
    kind = dtype.newbyteorder("=").name
    nbytes = math.prod(dims) * dtype.itemsize
    if nbytes > _MAX_IDX_BYTES:
        raise GenlabError(
            f"{path}: header declares {shape} {kind} ({nbytes:,} bytes), implausibly large; "
            f"the file is corrupt: {_FIX}"
        )
    payload = _read_exact(f, nbytes)
    extra = 0
    while chunk := f.read(1 << 20):  # count trailing garbage, bounded so a bomb cannot hang us
        extra += len(chunk)
        if extra > _MAX_IDX_BYTES:
            break
    if len(payload) != nbytes or extra:
        raise GenlabError(
            f"{path}: payload has {len(payload) + extra:,} bytes, expected {nbytes:,} for "
            f"{shape} {kind}; the file is truncated or corrupt: {_FIX}"
        )
    array = np.frombuffer(payload, dtype).reshape(dims)
    return array if dtype.itemsize == 1 else array.astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (gzip-compressed or raw, detected from its first bytes), strictly.

    Checks the magic number (two zero bytes, a known type code, the number of dimensions), and
    that the payload holds exactly the product of the dimensions: no truncation, no trailing
    bytes, no truncated or corrupt gzip stream.

    Returns:
        An array of the declared shape, e.g. (N, 28, 28) uint8 images or (N,) uint8 labels,
        in native byte order.

    Raises:
        GenlabError: a one-line message naming the file and what is wrong with it.
    """
    path = Path(path)
    try:
        with open(path, "rb") as raw:
            compressed = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            if not compressed:
                return _parse_idx(raw, path)
            with gzip.GzipFile(fileobj=raw) as f:
                return _parse_idx(f, path)
    except FileNotFoundError:
        raise GenlabError(f"{path}: no such file; {_INSTALL}") from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise GenlabError(
            f"{path}: the gzip stream is truncated or corrupt ({e}); {_FIX}"
        ) from None
    except OSError as e:
        raise GenlabError(f"{path}: cannot be read ({e.strerror or e}); {_FIX}") from None


def _file_key(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


@functools.lru_cache(maxsize=4)
def _load(images_key: tuple[str, int, int], labels_key: tuple[str, int, int]) -> ImageData:
    images_path, labels_path = Path(images_key[0]), Path(labels_key[0])
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.shape[1:] != (28, 28):
        raise GenlabError(
            f"{images_path}: holds {'x'.join(map(str, images.shape))} {images.dtype} data, "
            f"expected N x 28 x 28 uint8 images; {_FIX}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise GenlabError(
            f"{labels_path}: holds {'x'.join(map(str, labels.shape))} {labels.dtype} data, "
            f"expected N uint8 labels; {_FIX}"
        )
    if len(labels) != len(images):
        raise GenlabError(
            f"{labels_path}: has {len(labels):,} labels but {images_path.name} has "
            f"{len(images):,} images; the files do not belong together: {_FIX}"
        )
    if len(labels) and labels.max() >= len(CLASS_NAMES):
        raise GenlabError(f"{labels_path}: label {int(labels.max())} is out of range 0..9; {_FIX}")
    return ImageData(
        torch.from_numpy(images).unsqueeze(1),  # (N, 1, 28, 28) uint8, shares the buffer
        torch.from_numpy(labels.astype(np.int64)),  # (N,)
        CLASS_NAMES,
    )


def load_fashion_mnist(
    split: str = "train", data_dir: str | os.PathLike | None = None
) -> ImageData:
    """Load one split of Fashion-MNIST into memory.

    Results are cached in-process per file (path, size, mtime): a second call is free and
    returns the same tensors, so treat them as read-only.

    Args:
        split: "train" (60,000 images) or "test" (10,000 images).
        data_dir: the directory with the IDX files; None searches as `find_data_dir` does.

    Returns:
        `ImageData` with images (N, 1, 28, 28) uint8, labels (N,) int64 in 0..9, `CLASS_NAMES`.

    Raises:
        GenlabError: unknown split, data not found, or a malformed or inconsistent file.
    """
    if split not in FILES:
        raise GenlabError(f"unknown split {split!r} for Fashion-MNIST: use 'train' or 'test'")
    directory = find_data_dir(data_dir)
    images_path, labels_path = (_find_file(directory, stem) for stem in FILES[split])
    assert images_path is not None and labels_path is not None  # find_data_dir checked them
    return _load(_file_key(images_path), _file_key(labels_path))


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _download(url: str, target: Path, md5: str, progress: bool, timeout: float) -> None:
    """Stream `url` into a temporary file; it replaces `target` only if its MD5 matches."""
    import urllib.request

    from tqdm.auto import tqdm

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise GenlabError(f"{target.parent}: cannot create the directory ({e.strerror})") from None
    with atomic_path(target) as tmp:
        try:
            with (
                urllib.request.urlopen(url, timeout=timeout) as response,
                open(tmp, "wb") as out,
                tqdm(
                    total=int(response.headers.get("Content-Length") or 0) or None,
                    desc=target.name,
                    unit="B",
                    unit_scale=True,
                    file=sys.stderr,
                    disable=not progress,
                    leave=False,
                ) as bar,
            ):
                digest = hashlib.md5(usedforsecurity=False)
                while chunk := response.read(1 << 16):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        except (OSError, http.client.HTTPException) as e:
            code = getattr(e, "code", None)  # HTTPError: the status code, e.g. 404
            reason = f"HTTP {code} {e.reason}" if code else getattr(e, "reason", None) or e
            raise GenlabError(
                f"could not download {url} ({reason}); check the network (proxy, firewall) "
                "and retry, or `apt-get install dataset-fashion-mnist`"
            ) from None
        tmp.chmod(0o644)  # a data file others may read, not mkstemp's private 0600
        if digest.hexdigest() != md5:
            raise GenlabError(
                f"{url}: checksum mismatch (MD5 {digest.hexdigest()}, expected {md5}); the "
                f"download is corrupt or the server serves another file, nothing was written"
            )


def fetch_fashion_mnist(
    dest: str | os.PathLike | None = None,
    base_url: str = OFFICIAL_URL,
    progress: bool = True,
    checksums: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> Path:
    """Download the four Fashion-MNIST .gz files and verify their MD5 checksums.

    Files already present with the right checksum are skipped. Each download goes to a
    temporary file renamed into place only once its checksum matches: a failed, partial or
    corrupt download never creates or replaces a file.

    Args:
        dest: target directory; None = `cache_dir()/fashion-mnist`, where `find_data_dir` looks.
        base_url: where the files are, e.g. a mirror.
        progress: show a tqdm progress bar on stderr per file.
        checksums: file name -> MD5 hex digest, overriding `OFFICIAL_MD5` (for mirrors, tests).
        timeout: seconds to wait for the server before giving up.

    Returns:
        The directory holding the four files.

    Raises:
        GenlabError: a network failure, or a checksum mismatch.
    """
    directory = Path(dest).expanduser() if dest is not None else cache_dir() / "fashion-mnist"
    md5s = {**OFFICIAL_MD5, **(checksums or {})}
    for stem in (stem for pair in FILES.values() for stem in pair):
        name = stem + ".gz"
        target = directory / name
        if target.is_file() and _md5(target) == md5s[name]:
            continue
        _download(f"{base_url.rstrip('/')}/{name}", target, md5s[name], progress, timeout)
    return directory
