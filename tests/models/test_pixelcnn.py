"""Gated PixelCNN: causality (no blind spot), the exact likelihood against a pixel-by-pixel
computation, the discretized logistic mixture, the cached sampler against the naive one,
blocks of k pixels, binarization, exact resume."""

from __future__ import annotations

import math

import pytest
import torch

from genlab.data import Batch, binarized
from genlab.errors import GenlabError
from genlab.models.pixelcnn import (
    PixelCNN,
    PixelCNNConfig,
    block_shape,
    discretized_logistic_log_prob,
    from_blocks,
    to_blocks,
)


def tiny(**fields) -> PixelCNN:
    torch.manual_seed(0)
    base = {"image_size": 8, "width": 6, "layers": 4, "head_width": 8, "mixtures": 2}
    return PixelCNN(PixelCNNConfig(**{**base, **fields})).double().eval()


def output_gradient(model: PixelCNN, i: int, j: int, y=None) -> torch.Tensor:
    """|d out(i, j) / d input| summed over channels: (h, w) on the block grid."""
    h, w = model.grid
    x = torch.rand(1, model.positions, h, w, dtype=torch.float64) * 2 - 1
    x.requires_grad_(True)
    out = model.network(x, y)
    sum(p[:, :, i, j].sum() for p in out.params).backward()
    return x.grad.abs().sum((0, 1))


@pytest.mark.parametrize("conditional", [False, True])
def test_output_depends_on_exactly_the_pixels_before_it(conditional):
    model = tiny(num_classes=3 if conditional else 0)
    y = torch.tensor([1]) if conditional else None
    i, j = 4, 3
    grad = output_gradient(model, i, j, y)
    later = torch.zeros(8, 8, dtype=torch.bool)
    later.view(-1)[i * 8 + j :] = True  # raster order: (i, j) itself and everything after it
    assert (grad[later] == 0).all()
    # the blind spot of a plain PixelCNN with 3x3 masks: up one row, right two columns and
    # beyond; the vertical stack of the gated PixelCNN sees it
    assert grad[i - 1, j + 2] > 0 and grad[i - 1, j + 4] > 0
    assert grad[i, j - 1] > 0 and grad[0, 0] > 0  # left neighbour, and the far corner


def test_a_block_of_pixels_depends_only_on_earlier_blocks():
    model = tiny(pixels_per_step=4)  # 2x2 blocks: a 4x4 grid of 4 values
    assert model.grid == (4, 4) and model.positions == 4
    grad = output_gradient(model, 2, 1)
    later = torch.zeros(4, 4, dtype=torch.bool)
    later.view(-1)[2 * 4 + 1 :] = True
    assert (grad[later] == 0).all() and grad[1, 3] > 0


@pytest.mark.parametrize("head", ["softmax", "logistic"])
def test_log_prob_is_the_sum_of_the_pixels_conditionals(head):
    """log p(x) from one pass equals the sum over pixels of log p(x_i | x_<i), each computed
    from an image whose pixels from i on are replaced by noise."""
    model = tiny(head=head, image_size=6, num_classes=2)
    g = torch.Generator().manual_seed(3)
    levels = torch.randint(0, 256, (2, 1, 6, 6), generator=g)
    y = torch.tensor([0, 1])
    total = model.log_prob(levels, y)
    by_pixel = torch.zeros(2, dtype=torch.float64)
    for i in range(6):
        for j in range(6):
            scrambled = torch.randint(0, 256, levels.shape, generator=g)
            mask = torch.zeros(6, 6, dtype=torch.bool)
            mask.view(-1)[: i * 6 + j] = True
            seen = torch.where(mask, levels, scrambled)
            out = model(seen, y)
            log_p = model.log_prob_values(out, levels)
            by_pixel += log_p[:, 0, i, j]
    torch.testing.assert_close(total, by_pixel)
    assert (total < 0).all()


@pytest.mark.parametrize("levels", [256, 2])
def test_the_logistic_bins_sum_to_one_with_open_ends(levels):
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        pi = torch.randn(3, generator=g, dtype=torch.float64).expand(levels, 3)
        mu = (torch.rand(3, generator=g, dtype=torch.float64) * 4 - 2).expand(levels, 3)
        log_s = (torch.rand(3, generator=g, dtype=torch.float64) * 6 - 7).expand(levels, 3)
        log_p = discretized_logistic_log_prob(torch.arange(levels), pi, mu, log_s, levels)
        assert math.isclose(log_p.exp().sum().item(), 1.0, rel_tol=1e-9)
    # the middle bins equal sigma(upper) - sigma(lower) computed directly
    x = torch.tensor([100]).double()
    mu, log_s = torch.tensor([[0.1]]).double(), torch.tensor([[-3.0]]).double()
    c = 2 * 100 / 255 - 1

    def sigmoid(v: float) -> float:
        return 1 / (1 + math.exp(-v))

    direct = sigmoid((c + 1 / 255 - 0.1) / math.exp(-3)) - sigmoid(
        (c - 1 / 255 - 0.1) / math.exp(-3)
    )
    got = discretized_logistic_log_prob(x.long(), torch.zeros(1, 1).double(), mu, log_s, 256)
    assert math.isclose(got.exp().item(), direct, rel_tol=1e-6)  # direct: cancellation
    # the end bins take the tails: a mean far outside [-1, 1] puts all mass on 0 or 255
    far = torch.tensor([[5.0]]).double()
    top = discretized_logistic_log_prob(torch.tensor([255]), torch.zeros(1, 1), far, log_s, 256)
    assert top.exp().item() > 0.999 and torch.isfinite(top).all()


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"head": "logistic", "num_classes": 3},
        {"pixels_per_step": 4, "num_classes": 3},
        {"binarize": True, "kernel": 5},
    ],
    ids=["softmax", "logistic-conditional", "blocks", "binarized"],
)
def test_the_cached_sampler_draws_what_the_naive_one_draws(fields):
    model = tiny(**fields)
    y = torch.tensor([0, 2, 1]) if fields.get("num_classes") else None
    for temperature in (1.0, 0.7):
        a = model.sample(
            3, generator=torch.Generator().manual_seed(5), y=y, temperature=temperature
        )
        b = model.sample_naive(
            3, generator=torch.Generator().manual_seed(5), y=y, temperature=temperature
        )
        assert torch.equal(a, b)
    c = model.sample(3, generator=torch.Generator().manual_seed(6), y=y)
    assert not torch.equal(a, c)  # the seed matters
    assert a.shape == (3, 1, 8, 8) and a.min() >= 0 and a.max() <= 1
    levels = model.config.levels
    assert torch.equal((a * (levels - 1)).round(), a * (levels - 1))  # on the levels


def test_completion_keeps_the_top_rows_and_means_are_deterministic():
    model = tiny()
    x0 = torch.rand(2, 1, 8, 8)
    x0 = (x0 * 255).round() / 255
    out = model.sample(2, generator=torch.Generator().manual_seed(0), x0=x0, start_row=4)
    assert torch.equal(out[:, :, :4], x0[:, :, :4]) and not torch.equal(out, x0)
    naive = model.sample_naive(2, generator=torch.Generator().manual_seed(0), x0=x0, start_row=4)
    assert torch.equal(out, naive)
    m1 = model.sample(2, generator=torch.Generator().manual_seed(0), mean=True)
    m2 = model.sample(2, generator=torch.Generator().manual_seed(1), mean=True)
    assert torch.equal(m1, m2)
    with pytest.raises(GenlabError, match="temperature"):
        model.sample(1, temperature=0.0)


def test_blocks_of_k_pixels():
    assert block_shape(1, 28) == (1, 1)
    assert block_shape(4, 28) == (2, 2)
    assert block_shape(28, 28) == (1, 28)
    assert block_shape(196, 28) == (7, 28)
    assert block_shape(784, 28) == (28, 28)
    assert block_shape(14, 28) == (1, 14)
    for bad in (3, 5, 29, 785, 0):
        with pytest.raises(GenlabError, match="does not divide"):
            block_shape(bad, 28)
    x = torch.arange(2 * 3 * 28 * 28).view(2, 3, 28, 28)
    for k in (1, 4, 28, 196, 784):
        blocks = to_blocks(x, block_shape(k, 28))
        assert blocks.shape[1] == 3 * k
        assert torch.equal(from_blocks(blocks, block_shape(k, 28), 3), x)
    # one row per step: the block at grid row i is image row i
    assert torch.equal(to_blocks(x, (1, 28))[0, :28, 5, 0], x[0, 0, 5])


def test_all_pixels_at_once_depend_on_the_class_only():
    model = tiny(pixels_per_step=64, num_classes=2)
    assert model.grid == (1, 1)
    a = model.sample(
        2, generator=torch.Generator().manual_seed(0), y=torch.tensor([0, 1]), mean=True
    )
    b = model.sample(
        2, generator=torch.Generator().manual_seed(9), y=torch.tensor([0, 1]), mean=True
    )
    assert torch.equal(a, b) and not torch.equal(a[0], a[1])


def test_binarization_dynamic_in_training_and_fixed_on_the_test_set():
    images = torch.full((1000, 1, 2, 2), 64, dtype=torch.uint8)
    fixed = binarized(images)
    assert torch.equal(fixed, binarized(images)) and set(fixed.unique().tolist()) == {0, 255}
    assert abs(fixed.float().mean().item() / 255 - 64 / 255) < 0.02
    assert not torch.equal(fixed, binarized(images, seed=1))
    model = tiny(binarize=True, image_size=4, layers=2)
    x = torch.full((64, 1, 4, 4), 0.3, dtype=torch.float64)
    torch.manual_seed(0)
    loss_a, logs = model.loss(Batch(x, torch.full((64,), -1)))
    torch.manual_seed(1)
    loss_b, _ = model.loss(Batch(x, torch.full((64,), -1)))
    assert loss_a != loss_b  # fresh bits every step
    assert math.isclose(logs["bpd"].item(), loss_a.item() / math.log(2), rel_tol=1e-9)
    # two levels: an untrained model is close to 1 bit per pixel, far below 8
    assert 0.5 < logs["bpd"].item() < 2


def test_configuration_errors():
    with pytest.raises(GenlabError, match="odd"):
        PixelCNN(PixelCNNConfig(kernel=4))
    with pytest.raises(GenlabError, match="head"):
        PixelCNN(PixelCNNConfig(head="gaussian"))
    with pytest.raises(GenlabError, match="does not divide"):
        PixelCNN(PixelCNNConfig(pixels_per_step=5))
