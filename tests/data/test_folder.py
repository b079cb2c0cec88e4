"""Image folders: classes, splits, resizing, broken files, decompression bombs, the decode cache."""

from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from genlab.data import DataSpec, load_data
from genlab.data import folder as fd
from genlab.data.fashion_mnist import cache_dir
from genlab.errors import GenlabError

COLOURS = {"cat": (255, 0, 0), "dog": (0, 0, 255)}  # one flat colour per class


def _make_folder(root: Path, per_class: int = 20) -> Path:
    """root/cat/*.png (20x30 red) and root/dog/*.jpg (40x24 blue), with one nested file."""
    for i in range(per_class):
        Image.new("RGB", (30, 20), COLOURS["cat"]).save(root / _mkdir(root / "cat") / f"{i}.png")
        Image.new("RGB", (24, 40), COLOURS["dog"]).save(root / _mkdir(root / "dog") / f"{i}.jpg")
    Image.new("RGB", (16, 16), COLOURS["dog"]).save(_mkdir(root / "dog" / "nested") / "n.jpeg")
    return root


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _both_splits(root: Path, **kwargs) -> tuple:
    return fd.load_folder(root, "train", **kwargs), fd.load_folder(root, "test", **kwargs)


@pytest.mark.parametrize("channels", [1, 3])
def test_class_folders_are_labels(tmp_path, channels):
    root = _make_folder(tmp_path / "pets")
    train, test = _both_splits(root, size=16, channels=channels)
    assert train.class_names == test.class_names == ("cat", "dog")
    assert len(train) + len(test) == 41 and len(test) >= 1  # seeded 90/10 split of 41 files
    assert train.images.shape[1:] == (channels, 16, 16) and train.images.dtype == torch.uint8
    assert train.labels.dtype == torch.int64 and set(train.labels.tolist()) == {0, 1}
    for data in (train, test):  # every image has its class's colour
        for image, label in zip(data.images, data.labels, strict=True):
            rgb = COLOURS[data.class_names[label]]
            expected = rgb if channels == 3 else [round(np.dot(rgb, (0.299, 0.587, 0.114)))]
            assert (image.float().mean((1, 2)) - torch.tensor(expected)).abs().max() < 3


def test_split_is_deterministic_and_stable_when_files_are_added(tmp_path):
    root = _make_folder(tmp_path / "pets")
    first, again = fd.load_folder(root, "test", size=8), fd.load_folder(root, "test", size=8)
    assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)
    in_test = {r for r in _relpaths(root) if fd._in_test_split(r, seed=0)}
    assert 0 < len(in_test) == len(first) < 41 // 4
    for i in range(20):
        Image.new("RGB", (8, 8), "white").save(root / "cat" / f"new{i}.png")
    in_test_after = {r for r in _relpaths(root) if fd._in_test_split(r, seed=0)}
    assert in_test < in_test_after  # new files join, none moves out of the test split
    assert {r for r in _relpaths(root) if fd._in_test_split(r, seed=1)} != in_test_after


def _relpaths(root: Path) -> list[str]:
    return [p.relative_to(root).as_posix() for p in fd._list_images(root)]


def test_unlabelled_folder_and_train_test_subfolders(tmp_path):
    flat = _mkdir(tmp_path / "flat")
    for i in range(12):
        Image.new("L", (10, 10), i * 20).save(flat / f"{i}.bmp")
    train, test = _both_splits(flat, size=8)
    assert train.class_names == () and (train.labels == -1).all() and len(train) + len(test) == 12

    split = tmp_path / "split"
    for part, n in (("train", 5), ("test", 2)):
        for cls in ("a", "b"):
            for i in range(n):
                Image.new("RGB", (12, 12), "grey").save(_mkdir(split / part / cls) / f"{i}.webp")
    train, test = _both_splits(split, size=8, channels=3)
    assert (len(train), len(test)) == (10, 4) and train.class_names == ("a", "b")
    assert train.labels.tolist().count(1) == 5 and test.labels.tolist().count(0) == 2


def test_short_side_resize_and_centre_crop(tmp_path):
    image = np.zeros((20, 60), np.uint8)  # 60 wide, 20 high: the middle 20x20 is white
    image[:, 20:40] = 255
    Image.fromarray(image).save(_mkdir(tmp_path / "one") / "wide.png")
    data = _load_any(tmp_path / "one", size=10)
    assert data.images.shape == (1, 1, 10, 10)
    assert data.images.float().mean() > 250  # only the white centre survives the crop


def _load_any(root: Path, **kwargs):
    """The split that holds the (single) image, whichever the hash put it in."""
    for split in ("train", "test"):
        try:
            return fd.load_folder(root, split, **kwargs)
        except GenlabError:
            pass
    raise AssertionError("no split holds the image")


def test_broken_files_skipped_with_one_warning(tmp_path):
    root = _make_folder(tmp_path / "pets")
    good = (root / "cat" / "0.png").read_bytes()
    (root / "cat" / "broken.png").write_bytes(good[: len(good) // 2])  # truncated PNG
    (root / "dog" / "noise.png").write_bytes(np.random.default_rng(0).bytes(500))
    with pytest.warns(UserWarning) as record:
        data = fd.load_folder(root, "train", size=16)
    messages = [str(w.message) for w in record]
    assert len(messages) == 1
    assert messages[0].startswith(f"skipped 2 of 43 files in {root}: 2 could not be decoded")
    with pytest.warns(UserWarning, match="skipped 2 of 43"):  # again for the other split
        assert len(data) + len(fd.load_folder(root, "test", size=16)) == 41


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height but holds one tiny zlib stream: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


def test_decompression_bombs_are_refused(tmp_path, monkeypatch):
    root = _make_folder(tmp_path / "pets")
    (root / "cat" / "bomb.png").write_bytes(_png_header(100_000, 100_000))  # 10 gigapixels
    Image.new("L", (200, 200)).save(root / "dog" / "big.png")
    monkeypatch.setattr(fd, "MAX_PIXELS", 150 * 150)  # so a 200x200 image counts as too large
    with pytest.warns(UserWarning, match=r"skipped 2 of 43 files .*2 larger than 0.0225 megap"):
        train = fd.load_folder(root, "train", size=16)
    with pytest.warns(UserWarning, match="skipped 2 of 43"):
        test = fd.load_folder(root, "test", size=16)
    assert len(train) + len(test) == 41


def test_second_load_hits_the_cache(tmp_path, monkeypatch):
    root = _make_folder(tmp_path / "pets")
    (root / "cat" / "broken.png").write_bytes(b"not a png")
    with pytest.warns(UserWarning):
        first = fd.load_folder(root, "train", size=16, channels=3)
    assert len(list((cache_dir() / "folders").glob("*.npz"))) == 1

    def no_decoding(*args, **kwargs):
        raise AssertionError("PIL was called although the cache holds this folder")

    with monkeypatch.context() as m, pytest.warns(UserWarning, match="skipped 1 of 42"):
        m.setattr(fd.Image, "open", no_decoding)
        second = fd.load_folder(root, "train", size=16, channels=3)  # the warning survives
        test = fd.load_folder(root, "test", size=16, channels=3)  # one cache for both splits
    assert torch.equal(first.images, second.images) and torch.equal(first.labels, second.labels)
    assert len(first) + len(test) == 41

    # a changed file, size or channel count is a new cache entry
    Image.new("RGB", (30, 20), COLOURS["dog"]).save(root / "cat" / "0.png")
    split = "test" if fd._in_test_split("cat/0.png", seed=0) else "train"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        changed = fd.load_folder(root, split, size=16, channels=3)
        fd.load_folder(root, "train", size=8, channels=3)
    assert len(list((cache_dir() / "folders").glob("*.npz"))) == 3
    red = changed.images[changed.labels == 0, 0].float().mean((1, 2))  # cat images' red channel
    assert (red < 10).sum() == 1  # the re-saved blue one


def test_corrupt_cache_entry_is_rebuilt(tmp_path):
    root = _make_folder(tmp_path / "pets")
    first = fd.load_folder(root, "train", size=8)
    (entry,) = (cache_dir() / "folders").glob("*.npz")
    entry.write_bytes(b"garbage")
    again = fd.load_folder(root, "train", size=8)
    assert torch.equal(first.images, again.images)
    assert np.load(entry, allow_pickle=False)["images"].shape[1:] == (1, 8, 8)


def test_load_data_folder_spec(tmp_path):
    root = _make_folder(tmp_path / "pets")
    data = load_data(DataSpec("folder", path=str(root), size=12, channels=3), "train")
    assert data.shape == (3, 12, 12) and data.class_names == ("cat", "dog")


def test_user_errors(tmp_path):
    with pytest.raises(GenlabError, match="no such folder"):
        fd.load_folder(tmp_path / "missing")
    empty = _mkdir(tmp_path / "empty")
    (empty / "notes.txt").write_text("not an image")
    with pytest.raises(GenlabError, match="no images found"):
        fd.load_folder(empty)
    with pytest.raises(GenlabError, match="needs a path"):
        fd.load_folder(None)
    root = _make_folder(tmp_path / "pets", per_class=1)
    for kwargs, message in (
        ({"channels": 2}, "channels must be 1"),
        ({"size": 0}, "positive number"),
        ({"split": "val"}, "unknown split"),
    ):
        with pytest.raises(GenlabError, match=message):
            fd.load_folder(root, **kwargs)
    only_broken = _mkdir(tmp_path / "broken")
    (only_broken / "x.png").write_bytes(b"junk")
    with pytest.warns(UserWarning), pytest.raises(GenlabError, match="split has no images"):
        fd.load_folder(only_broken)
