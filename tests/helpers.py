"""Helpers importable from any test: IDX writing and a tiny learnable synthetic Fashion-MNIST."""

from __future__ import annotations

import csv
import gzip
import os
from pathlib import Path

import numpy as np

_IDX_CODES = {"uint8": 0x08, "int8": 0x09, "int16": 0x0B, "int32": 0x0C, "float32": 0x0D}


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of `array`: magic (0, 0, type code, ndim), big-endian dims, payload."""
    array = np.asarray(array)
    header = bytes([0, 0, _IDX_CODES[array.dtype.name], array.ndim])
    dims = np.array(array.shape, dtype=">u4").tobytes()
    return header + dims + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write `array` as an IDX file, gzip-compressed (reproducibly) when `path` ends in .gz."""
    path = Path(path)
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)
    return path


def _templates() -> np.ndarray:
    """(10, 28, 28) float in [0, 1]: one distinct shape per class, loosely like the garments."""
    y, x = np.mgrid[:28, :28]
    t = np.zeros((10, 28, 28))
    t[0, 5:11, 3:25] = 1  # wide top bar (T-shirt)
    t[1, 3:25, 8:12] = t[1, 3:25, 16:20] = 1  # two legs (trouser)
    t[2, 6:23, 5:23] = 1  # filled block (pullover)
    t[3] = (y >= 4) & (y < 25) & (np.abs(x - 13.5) < 2 + (y - 4) * 0.45)  # triangle (dress)
    t[4] = np.abs(np.hypot(y - 13.5, x - 13.5) - 9) < 2  # ring (coat)
    t[5, 17:23, 2:26] = 1  # low bar (sandal)
    t[6] = np.abs(x - y) < 3  # diagonal (shirt)
    t[7] = np.abs(x + y - 27) < 3  # anti-diagonal (sneaker)
    t[8] = np.exp(-((y - 15) ** 2 + (x - 13.5) ** 2) / 30)  # blob (bag)
    t[9, 3:23, 5:10] = t[9, 18:23, 5:25] = 1  # L shape (ankle boot)
    return t


def synthetic_fashion_mnist(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n balanced, seeded samples: images (n, 28, 28) uint8 and labels (n,) uint8 in 0..9.

    Each class is its template shifted by up to 2 pixels, scaled in brightness and with
    Gaussian noise: distinct enough for a small model to learn, varied enough not to be trivial.
    """
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 10).astype(np.uint8)
    images = _templates()[labels]  # (n, 28, 28)
    shifts = rng.integers(-2, 3, size=(n, 2))
    for i, (dy, dx) in enumerate(shifts):
        images[i] = np.roll(images[i], (dy, dx), axis=(0, 1))
    images = images * rng.uniform(0.7, 1.0, size=(n, 1, 1)) + rng.normal(0, 0.08, images.shape)
    return (images.clip(0, 1) * 255).round().astype(np.uint8), labels


def write_fashion_mnist(
    directory: str | Path, n_train: int = 600, n_test: int = 200, seed: int = 0
) -> Path:
    """Write a synthetic Fashion-MNIST as the 4 official .gz IDX files; returns the directory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for prefix, n, s in (("train", n_train, seed), ("t10k", n_test, seed + 1)):
        images, labels = synthetic_fashion_mnist(n, s)
        write_idx(directory / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return directory


def block_network(monkeypatch) -> list:
    """Make every socket connection fail (and be recorded) for the rest of a test; also drop
    HF_HUB_OFFLINE, so that only genlab's own offline settings keep the hub away.

    Returns:
        The list the attempted connections are appended to.
    """
    import socket

    attempts: list = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return attempts


TINY_OPTIONS = {  # every family's options for a tiny run (VAE: a spatial VAE run's path)
    "ae": ["--latent-dim", "4", "--widths", "4,8"],
    "vae": ["--latent-dim", "4", "--widths", "4,8"],
    "gan": ["--latent-dim", "4", "--g-widths", "4,8", "--d-widths", "4,8"],
    "cgan": ["--latent-dim", "4", "--g-widths", "4,8", "--d-widths", "4,8", "--loss", "hinge"],
    "stylegan": ["--latent-dim", "4", "--g-widths", "4,8", "--d-widths", "4,8"],
    "cyclegan": [
        "--class-a",
        "Sneaker",
        "--class-b",
        "Bag",
        "--widths",
        "4,8",
        "--d-widths",
        "4,8",
        "--n-res-blocks",
        "1",
        "--batch-size",
        "4",
    ],
    "ddpm": ["--width", "8", "--steps", "2", "--conditional"],
    "ldm": ["--vae", "VAE", "--width", "8", "--steps", "2"],
    "txt2img": ["--vae", "VAE", "--width", "8", "--steps", "2"],
    "flow-matching": ["--width", "8", "--mults", "1,2", "--steps", "2", "--conditional"],
    "classifier": ["--widths", "4,8", "--depths", "1,1", "--feature-dim", "8"],
    "noisy-classifier": ["--width", "8", "--mults", "1,2"],
    "pixelcnn": ["--width", "4", "--layers", "2", "--head-width", "8"],
    "glow": ["--width", "4", "--depth", "1", "--levels", "2"],
    "vqvae": ["--widths", "4,8", "--code-dim", "4", "--codebook-size", "8"],
}
TINY_OPTIONS["dqn"] = ["--width", "8", "--learning-starts", "1", "--eval-every", "0"]
TINY_OPTIONS["qtable"] = ["--env", "CliffWalking-v1", "--eval-every", "0"]


def train_args(family: str, args: list[str]) -> list[str]:
    """`args` without the options `genlab train FAMILY` does not offer (an agent has no data or
    image options): flags with their value, or bare switches."""
    from genlab.families import FAMILIES
    from genlab.training import options_of

    known = set()
    for o in options_of(FAMILIES[family]).values():
        known |= set(o.spellings) | {o.flag, "--no-" + o.flag[2:]}
    known |= {"--progress", "--no-progress", "--out", "--config"}
    kept, i = [], 0
    while i < len(args):
        a = args[i]
        takes_value = i + 1 < len(args) and not args[i + 1].startswith("--")
        if a.startswith("--") and a not in known:
            i += 2 if takes_value else 1
            continue
        kept.append(a)
        if a.startswith("--") and takes_value:
            kept.append(args[i + 1])
            i += 1
        i += 1
    return kept


def metric_rows(run: Path) -> list[dict[str, str]]:
    """A run's metrics.csv rows without the wall-clock columns (equal runs give equal rows)."""
    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    drop = ("images_per_s", "elapsed_s")
    return [{k: v for k, v in r.items() if k not in drop} for r in rows]


def require_real_fashion_mnist() -> None:
    """Skip the calling test unless the real Fashion-MNIST is installed system-wide (its four
    IDX files); fail instead under GENLAB_REQUIRE_REAL_DATA=1 (CI, where it must be)."""
    import pytest

    from genlab.data import fashion_mnist as fm

    if all((fm.SYSTEM_DIR / (stem + ".gz")).is_file() for p in fm.FILES.values() for stem in p):
        return
    if os.environ.get("GENLAB_REQUIRE_REAL_DATA") == "1":
        pytest.fail(f"GENLAB_REQUIRE_REAL_DATA=1 but Fashion-MNIST is not in {fm.SYSTEM_DIR}")
    pytest.skip(f"the real Fashion-MNIST is not installed in {fm.SYSTEM_DIR}")


def board_scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    """RUN/tensorboard's scalars as TensorBoard's own reader sees them (events an interrupted
    session logged after its checkpoint purged), tag -> [(step, value), ...] in order."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(Path(run) / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def csv_scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    """metrics.csv as TensorBoard scalars would hold it: each numeric cell, as float32."""
    import math

    with open(Path(run) / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    out: dict[str, list[tuple[int, float]]] = {}
    for row in rows:
        for key, cell in row.items():
            if key == "step":
                continue
            try:
                value = float(cell)
            except (TypeError, ValueError):
                continue
            if math.isfinite(value):
                out.setdefault(key, []).append((int(row["step"]), float(np.float32(value))))
    return out
