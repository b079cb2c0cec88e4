"""Classifier: shapes, the feature embedding, overfitting, augmentation only in training."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from genlab.data import Batch, ImageData
from genlab.errors import GenlabError
from genlab.models.classifier import (
    Classifier,
    ClassifierConfig,
    evaluate_accuracy,
    random_shift_flip,
)

TINY = ClassifierConfig(widths=(8, 16), depths=(1, 2), feature_dim=12, dropout=0.0)


def make(config: ClassifierConfig = TINY, seed: int = 0) -> Classifier:
    torch.manual_seed(seed)
    return Classifier(config)


@pytest.mark.parametrize(("channels", "size"), [(1, 28), (3, 32), (3, 64)])
def test_shapes(channels, size):
    config = dataclasses.replace(TINY, channels=channels, image_size=size, num_classes=5)
    model = make(config).eval()
    x = torch.rand(3, channels, size, size)
    assert model(x).shape == (3, 5)
    assert model.features(x).shape == (3, 12) and model.num_features == 12


def test_features_are_the_penultimate_activations():
    model = make().eval()
    x = torch.rand(4, 1, 28, 28)
    h = model.features(x)
    assert (h >= 0).all()  # after the ReLU
    torch.testing.assert_close(model.head(h), model(x))


def test_default_config_builds_and_rejects_bad_configs():
    model = Classifier(ClassifierConfig())
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(GenlabError):
        Classifier(dataclasses.replace(TINY, num_classes=1))
    with pytest.raises(GenlabError):
        Classifier(dataclasses.replace(TINY, image_size=2, widths=(4, 4)))
    with pytest.raises(GenlabError, match="depths"):
        Classifier(dataclasses.replace(TINY, depths=(1, 1, 1)))  # 3 counts for 2 stages


def test_loss_falls_overfitting_one_batch():
    torch.manual_seed(0)
    model = make(dataclasses.replace(TINY, image_size=12, augment=False))
    batch = Batch(torch.rand(20, 1, 12, 12), torch.arange(20) % 10)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    first, _ = model.loss(batch)
    for _ in range(150):
        loss, logs = model.loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert torch.isfinite(first) and loss.item() < 0.2 * first.item()
    assert logs["acc"].item() >= 0.9 and not logs["acc"].requires_grad


def test_loss_rejects_unlabelled_data():
    with pytest.raises(GenlabError, match="labelled"):
        make().loss(Batch(torch.rand(2, 1, 28, 28), torch.full((2,), -1)))


def test_augment_only_in_training_mode():
    model = make(dataclasses.replace(TINY, augment=True))
    batch = Batch(torch.rand(16, 1, 28, 28), torch.arange(16) % 10)
    model.eval()
    torch.manual_seed(1)
    a, _ = model.loss(batch)
    torch.manual_seed(2)
    b, _ = model.loss(batch)
    assert a.item() == b.item()  # eval: deterministic, no augmentation
    model.train()
    losses = []
    for seed in (1, 2, 1):
        torch.manual_seed(seed)
        losses.append(model.loss(batch)[0].item())
    # Training: the global RNG drives the augmentation (BN uses batch statistics either way).
    assert losses[0] != losses[1] and losses[0] == losses[2]


def test_random_shift_flip_moves_content_by_at_most_two_pixels():
    torch.manual_seed(0)
    x = torch.zeros(64, 3, 32, 32)
    x[:, :, 15, 10] = 1.0  # one bright pixel per image
    out = random_shift_flip(x)
    assert out.shape == x.shape and torch.equal(out.sum((1, 2, 3)), x.sum((1, 2, 3)))
    rows, cols = (out[:, 0] == 1).nonzero()[:, 1], (out[:, 0] == 1).nonzero()[:, 2]
    assert ((rows - 15).abs() <= 2).all()
    near = (cols - 10).abs() <= 2
    flipped = (cols - 21).abs() <= 2  # 31 - 10
    assert (near | flipped).all() and near.any() and flipped.any()
    assert len(set(rows.tolist())) == 5  # all 5 vertical offsets occur


def test_evaluate_accuracy_counts_correct_predictions():
    model = make().eval()
    images = torch.randint(0, 256, (20, 1, 28, 28), dtype=torch.uint8)
    with torch.no_grad():
        predicted = model(images.float() / 255).argmax(1)
    labels = predicted.clone()
    labels[:5] = (labels[:5] + 1) % 10
    data = ImageData(images, labels, tuple(str(i) for i in range(10)))
    assert evaluate_accuracy(model, data, batch_size=7) == pytest.approx(0.75)
