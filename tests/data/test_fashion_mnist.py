"""Fashion-MNIST: lookup order, strict IDX parsing, validation, and fetching from a local server."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import shutil
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import (
    idx_bytes,
    require_real_fashion_mnist,
    synthetic_fashion_mnist,
    write_fashion_mnist,
    write_idx,
)

from genlab.data import DataSpec, load_data
from genlab.data import fashion_mnist as fm
from genlab.errors import GenlabError

TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
FIX_HINT = "genlab data fetch fashion-mnist"


# --- lookup order ---------------------------------------------------------------------------


def _fake_data_dir(path: Path) -> Path:
    """A directory that counts as holding the data (find_data_dir only checks the names)."""
    path.mkdir(parents=True)
    for images, labels in fm.FILES.values():
        (path / images).touch()  # uncompressed names count as well as .gz
        (path / (labels + ".gz")).touch()
    return path


def test_lookup_order_explicit_env_system_cache(tmp_path, monkeypatch):
    explicit = _fake_data_dir(tmp_path / "explicit")
    env = _fake_data_dir(tmp_path / "env")
    system = _fake_data_dir(tmp_path / "system")
    cache = _fake_data_dir(fm.cache_dir() / "fashion-mnist")
    monkeypatch.setattr(fm, "SYSTEM_DIR", system)
    monkeypatch.setenv("GENLAB_DATA", str(env))

    assert fm.find_data_dir(explicit) == explicit
    assert fm.find_data_dir() == env
    monkeypatch.delenv("GENLAB_DATA")
    assert fm.find_data_dir() == system
    shutil.rmtree(system)
    assert fm.find_data_dir() == cache
    shutil.rmtree(cache)
    with pytest.raises(GenlabError, match=FIX_HINT) as err:
        fm.find_data_dir()
    assert str(system) in str(err.value) and "apt-get install dataset-fashion-mnist" in str(
        err.value
    )


def test_cache_dir_follows_xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert fm.cache_dir() == tmp_path / "genlab"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert fm.cache_dir() == Path.home() / ".cache" / "genlab"


def test_explicit_dir_missing_a_file_is_an_error_not_a_fallthrough(tmp_path, monkeypatch):
    monkeypatch.setattr(fm, "SYSTEM_DIR", _fake_data_dir(tmp_path / "system"))
    partial = _fake_data_dir(tmp_path / "partial")
    (partial / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(GenlabError, match="missing t10k-images-idx3-ubyte"):
        fm.find_data_dir(partial)
    with pytest.raises(GenlabError, match="no such directory"):
        fm.find_data_dir(tmp_path / "nowhere")
    monkeypatch.setenv("GENLAB_DATA", str(partial))
    with pytest.raises(GenlabError, match=r"GENLAB_DATA.*missing t10k-images"):
        fm.find_data_dir()


# --- loading good files ---------------------------------------------------------------------


def test_loads_shapes_dtypes_and_values(fmnist_dir):
    train = fm.load_fashion_mnist("train", data_dir=fmnist_dir)
    test = fm.load_fashion_mnist("test", data_dir=fmnist_dir)
    assert train.images.shape == (600, 1, 28, 28) and train.images.dtype == torch.uint8
    assert train.labels.shape == (600,) and train.labels.dtype == torch.int64
    assert len(test) == 200 and test.shape == (1, 28, 28)
    assert train.class_names == fm.CLASS_NAMES and len(fm.CLASS_NAMES) == 10
    assert torch.bincount(train.labels).tolist() == [60] * 10
    images, labels = synthetic_fashion_mnist(600, seed=0)  # what conftest wrote
    assert np.array_equal(train.images[:, 0].numpy(), images)
    assert np.array_equal(train.labels.numpy(), labels)


def test_load_data_and_uncompressed_files(fmnist_dir, tmp_path, monkeypatch):
    for path in fmnist_dir.iterdir():  # the same data, gunzipped
        (tmp_path / path.name.removesuffix(".gz")).write_bytes(gzip.decompress(path.read_bytes()))
    raw = fm.load_fashion_mnist("test", data_dir=tmp_path)
    monkeypatch.setenv("GENLAB_DATA", str(fmnist_dir))
    via_spec = load_data(DataSpec("fashion-mnist"), "test")
    assert torch.equal(raw.images, via_spec.images) and torch.equal(raw.labels, via_spec.labels)


def test_unknown_split(fmnist_dir):
    with pytest.raises(GenlabError, match="'valid'"):
        fm.load_fashion_mnist("valid", data_dir=fmnist_dir)


def test_read_idx_other_dtypes_round_trip(tmp_path):
    for array in (np.arange(-6, 6, dtype=np.int16).reshape(3, 4), np.linspace(0, 1, 5, dtype="f4")):
        read = fm.read_idx(write_idx(tmp_path / f"{array.dtype}.idx", array))
        assert read.dtype == array.dtype and np.array_equal(read, array)


# --- corrupt files: each is one GenlabError naming the file ---------------------------------


def _corrupted(src: Path, dst: Path, name: str, content: bytes, compress: bool = True) -> Path:
    """A copy of the data directory `src` whose file `name` holds `content` (gzipped)."""
    shutil.copytree(src, dst)
    (dst / name).write_bytes(gzip.compress(content) if compress else content)
    return dst


def _images_bytes(n: int = 600, side: int = 28) -> bytes:
    return idx_bytes(np.zeros((n, side, side), np.uint8))


def _with_code(data: bytes, code: int) -> bytes:
    return data[:2] + bytes([code]) + data[3:]


CORRUPTIONS = {
    "wrong magic": (TRAIN_IMAGES, b"\x01\x02" + _images_bytes()[2:], True, "not an IDX file"),
    "unknown dtype code": (TRAIN_IMAGES, _with_code(_images_bytes(), 0x07), True, "type code 0x07"),
    "float images": (
        TRAIN_IMAGES,
        idx_bytes(np.zeros((600, 28, 28), np.float32)),
        True,
        "expected N x 28 x 28 uint8",
    ),
    "truncated payload": (
        TRAIN_IMAGES,
        _images_bytes()[:-1000],
        True,
        "payload has 469,400 bytes, expected 470,400 for 600x28x28 uint8; the file is truncated",
    ),
    "trailing bytes": (TRAIN_IMAGES, _images_bytes() + b"\0" * 7, True, "payload has 470,407"),
    "truncated header": (TRAIN_IMAGES, _images_bytes()[:10], True, "header is truncated"),
    "empty file": (TRAIN_IMAGES, b"", False, "too short for an IDX file"),
    "truncated gzip": (
        TRAIN_IMAGES,
        gzip.compress(_images_bytes())[:-50],
        False,
        "gzip stream is truncated or corrupt",
    ),
    "corrupt gzip": (
        TRAIN_IMAGES,
        gzip.compress(_images_bytes())[:40] + b"\xff" * 200,
        False,
        "gzip stream is truncated or corrupt",
    ),
    "huge header": (
        TRAIN_IMAGES,
        bytes([0, 0, 8, 3]) + np.array([2**31, 28, 28], ">u4").tobytes(),
        True,
        "implausibly large",
    ),
    "wrong image size": (
        TRAIN_IMAGES,
        _images_bytes(side=32),
        True,
        "holds 600x32x32 uint8 data, expected N x 28 x 28",
    ),
    "count mismatch": (
        TRAIN_LABELS,
        idx_bytes(np.zeros(599, np.uint8)),
        True,
        "599 labels but train-images-idx3-ubyte.gz has 600 images",
    ),
    "label out of range": (
        TRAIN_LABELS,
        idx_bytes(np.full(600, 10, np.uint8)),
        True,
        "label 10 is out of range 0..9",
    ),
    "2-D labels": (TRAIN_LABELS, idx_bytes(np.zeros((600, 1), np.uint8)), True, "expected N uint8"),
}


@pytest.mark.parametrize("case", CORRUPTIONS)
def test_corrupt_file_gives_one_line_error_naming_it(case, fmnist_dir, tmp_path):
    name, content, compress, message = CORRUPTIONS[case]
    directory = _corrupted(fmnist_dir, tmp_path / "d", name, content, compress)
    with pytest.raises(GenlabError) as err:
        fm.load_fashion_mnist("train", data_dir=directory)
    text = str(err.value)
    assert message in text and str(directory / name) in text
    assert "\n" not in text
    context = err.value.__context__  # no chained traceback from gzip, struct or zlib
    assert err.value.__cause__ is None and (context is None or err.value.__suppress_context__)
    # the test split is untouched and still loads
    assert len(fm.load_fashion_mnist("test", data_dir=directory)) == 200


def test_missing_file(fmnist_dir, tmp_path):
    directory = shutil.copytree(fmnist_dir, tmp_path / "d")
    (directory / TRAIN_LABELS).unlink()
    with pytest.raises(GenlabError, match="missing train-labels-idx1-ubyte"):
        fm.load_fashion_mnist("train", data_dir=directory)
    with pytest.raises(GenlabError, match=r"nope\.gz: no such file"):
        fm.read_idx(tmp_path / "nope.gz")


def test_reload_after_file_changes(fmnist_dir, tmp_path):
    directory = shutil.copytree(fmnist_dir, tmp_path / "d")
    assert len(fm.load_fashion_mnist("test", data_dir=directory)) == 200
    write_fashion_mnist(
        directory, n_train=600, n_test=30, seed=5
    )  # the in-process cache must see it
    assert len(fm.load_fashion_mnist("test", data_dir=directory)) == 30


# --- the real data ----------------------------------------------------------------------------


def test_real_fashion_mnist_loads_fully():
    require_real_fashion_mnist()
    train = fm.load_fashion_mnist("train", data_dir=fm.SYSTEM_DIR)
    test = fm.load_fashion_mnist("test", data_dir=fm.SYSTEM_DIR)
    assert train.images.shape == (60_000, 1, 28, 28) and test.images.shape == (10_000, 1, 28, 28)
    assert torch.bincount(train.labels).tolist() == [6000] * 10
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    assert train.images.max() == 255 and train.images.min() == 0
    assert 60 < train.images.float().mean() < 80  # the known mean pixel is about 72.9


# --- fetching from a local HTTP server ---------------------------------------------------------


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: list[str]

    def log_message(self, *args) -> None:  # keep the test output quiet
        pass

    def do_GET(self) -> None:
        self.requests.append(self.path)
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    """Serves `root` (a copy of the synthetic .gz files) on 127.0.0.1; yields (url, root, log)."""
    root = write_fashion_mnist(tmp_path / "served", n_train=50, n_test=20)
    log: list[str] = []
    handler = type("Handler", (_Handler,), {"requests": log})
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), lambda *a: handler(*a, directory=str(root))
    )
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", root, log
    httpd.shutdown()
    httpd.server_close()


def _md5s(root: Path) -> dict[str, str]:
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in root.glob("*.gz")}


def test_fetch_downloads_verifies_and_skips_valid_files(server, tmp_path, capsys):
    url, root, log = server
    dest = tmp_path / "dest"
    got = fm.fetch_fashion_mnist(dest, base_url=url, checksums=_md5s(root))
    assert got == dest and sorted(p.name for p in dest.iterdir()) == sorted(fm.OFFICIAL_MD5)
    assert len(fm.load_fashion_mnist("train", data_dir=dest)) == 50
    assert len(log) == 4 and "train-images-idx3-ubyte" in capsys.readouterr().err  # tqdm bar

    log.clear()
    fm.fetch_fashion_mnist(dest, base_url=url, checksums=_md5s(root), progress=False)
    assert log == []  # nothing downloaded again

    (dest / TRAIN_LABELS).write_bytes(b"stale")  # a bad file is replaced
    fm.fetch_fashion_mnist(dest, base_url=url, checksums=_md5s(root), progress=False)
    assert log == [f"/{TRAIN_LABELS}"] and _md5s(dest) == _md5s(root)


def test_fetch_default_dest_is_found_by_lookup(server, tmp_path, monkeypatch):
    url, root, _ = server
    monkeypatch.setattr(fm, "SYSTEM_DIR", tmp_path / "no-system-data")
    dest = fm.fetch_fashion_mnist(base_url=url, checksums=_md5s(root), progress=False)
    assert dest == fm.cache_dir() / "fashion-mnist" == fm.find_data_dir()


def test_fetch_checksum_mismatch_leaves_no_file(server, tmp_path):
    url, root, _ = server
    checksums = {**_md5s(root), "t10k-images-idx3-ubyte.gz": "0" * 32}
    dest = tmp_path / "dest"
    with pytest.raises(GenlabError, match="t10k-images-idx3-ubyte.gz: checksum mismatch"):
        fm.fetch_fashion_mnist(dest, base_url=url, checksums=checksums, progress=False)
    assert "t10k-images-idx3-ubyte.gz" not in {p.name for p in dest.iterdir()}
    assert not [p for p in dest.iterdir() if p.name.endswith(".tmp")]  # no temporary leftovers


def test_fetch_official_checksums_reject_other_files(server, tmp_path):
    url, _, _ = server
    with pytest.raises(GenlabError, match="checksum mismatch"):
        fm.fetch_fashion_mnist(tmp_path / "dest", base_url=url, progress=False)
    assert list((tmp_path / "dest").iterdir()) == []


def test_fetch_http_error_and_unreachable_server(server, tmp_path):
    url, root, _ = server
    (root / TRAIN_IMAGES).unlink()  # 404
    with pytest.raises(GenlabError, match=r"could not download .*train-images.*HTTP 404"):
        fm.fetch_fashion_mnist(tmp_path / "a", base_url=url, checksums=_md5s(root), progress=False)

    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(GenlabError, match="could not download .*check the network") as err:
        fm.fetch_fashion_mnist(tmp_path / "b", base_url=f"http://127.0.0.1:{port}", timeout=5)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "b").exists() or list((tmp_path / "b").iterdir()) == []
