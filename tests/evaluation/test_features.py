"""The feature network: shipped Fashion-MNIST weights, embedding, classifier runs as embedders."""

from __future__ import annotations

import pytest
import torch
from helpers import require_real_fashion_mnist

from genlab.cli import main
from genlab.data import fashion_mnist as fm
from genlab.errors import GenlabError
from genlab.evaluation import Embedding, FeatureNetwork, load_feature_network, shipped_info
from genlab.evaluation.features import FASHION_MNIST
from genlab.models.classifier import evaluate_accuracy


def test_shipped_weights_load_and_are_small():
    net = load_feature_network()
    assert isinstance(net, FeatureNetwork) and not net.training
    assert FASHION_MNIST.stat().st_size < 5 * 2**20
    assert net.class_names == fm.CLASS_NAMES and net.num_features == 128
    info = shipped_info()
    assert info["command"].startswith("genlab train classifier") and info["ema"] is True
    assert info["test_accuracy"] >= 0.93


@pytest.mark.kernels
def test_shipped_weights_reproduce_their_recorded_test_accuracy():
    require_real_fashion_mnist()
    test = fm.load_fashion_mnist("test", data_dir=fm.SYSTEM_DIR)
    net = load_feature_network()
    accuracy = evaluate_accuracy(net.classifier, test)
    assert abs(accuracy - shipped_info()["test_accuracy"]) <= 0.001
    embedding = net.embed(test.images[:1000])
    agree = (embedding.logits.argmax(1) == net.logits(test.images[:1000] / 255).argmax(1)).all()
    assert agree


def test_embed_accepts_uint8_and_float_alike():
    net = load_feature_network()
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (37, 1, 28, 28), dtype=torch.uint8, generator=g)
    a = net.embed(images, batch_size=16)
    b = net.embed(images.float() / 255.0)
    assert isinstance(a, Embedding)
    assert a.features.shape == (37, 128) and a.logits.shape == (37, 10)
    assert a.features.dtype == a.logits.dtype == torch.float32
    torch.testing.assert_close(a.features, b.features)
    torch.testing.assert_close(a.logits, b.logits)
    torch.testing.assert_close(a.features, net(images.float() / 255.0))
    with pytest.raises(GenlabError, match="shape"):
        net.embed(torch.rand(2, 3, 32, 32))


def test_network_stays_in_eval_mode():
    net = load_feature_network().train()
    assert not net.training and not net.classifier.training
    x = torch.rand(8, 1, 28, 28)
    torch.testing.assert_close(net(x), net(x))  # no dropout, running BN statistics


def test_a_classifier_run_is_a_feature_network(fmnist_dir, tmp_path):
    run = tmp_path / "clf"
    common = ["--data-dir", str(fmnist_dir), "--max-steps", "4", "--batch-size", "32"]
    assert main(["train", "classifier", "--out", str(run), *common, "--no-progress"]) == 0
    net = load_feature_network(run=run)
    assert net.class_names == fm.CLASS_NAMES and not net.training
    assert net.embed(torch.zeros(3, 1, 28, 28, dtype=torch.uint8)).features.shape == (3, 128)

    vae = tmp_path / "vae"
    assert main(["train", "vae", "--out", str(vae), *common, "--no-progress"]) == 0
    with pytest.raises(GenlabError, match="not a classifier"):
        load_feature_network(run=vae)
    with pytest.raises(GenlabError, match="not both"):
        load_feature_network(FASHION_MNIST, run=run)
