"""2-D toys: mixture data, the mode-coverage metric, seeded toy GAN training, the GIF."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from genlab.errors import GenlabError
from genlab.toy2d import animate, grid, mode_coverage_2d, ring, train_toy


def test_ring_puts_points_near_its_centres():
    data = ring(2000, k=8, radius=2.0, std=0.02, generator=torch.Generator().manual_seed(0))
    assert data.x.shape == (2000, 2) and data.centres.shape == (8, 2)
    torch.testing.assert_close(data.centres.norm(dim=1), torch.full((8,), 2.0))
    neighbours = (data.centres - data.centres.roll(1, 0)).norm(dim=1)  # equal spacing
    torch.testing.assert_close(neighbours, torch.full((8,), 2 * 2.0 * math.sin(math.pi / 8)))
    dist, nearest = torch.cdist(data.x, data.centres).min(1)
    assert dist.max() < 5 * 0.02 and torch.bincount(nearest, minlength=8).min() > 150
    modes, quality = mode_coverage_2d(data.x, data.centres, 0.02)
    assert modes == 8 and quality > 0.97  # P(r > 3 std) = exp(-4.5) = 1.1% in 2-D


def test_grid_puts_points_near_its_centres():
    data = grid(2000, side=5, spacing=2.0, std=0.05, generator=torch.Generator().manual_seed(0))
    assert data.centres.shape == (25, 2)
    assert set(data.centres[:, 0].tolist()) == {-4.0, -2.0, 0.0, 2.0, 4.0}
    assert torch.cdist(data.x, data.centres).min(1).values.max() < 5 * 0.05
    modes, quality = mode_coverage_2d(data.x, data.centres, 0.05)
    assert modes == 25 and quality > 0.97


def test_mode_coverage_by_hand():
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    samples = torch.tensor([[0.0, 0.0], [0.1, 0.0], [0.0, -0.2], [10.0, 0.05], [5.0, 5.0]])
    # within 3 * 0.1 of a mode: four of five samples, three at mode 0 and one at mode 1
    assert mode_coverage_2d(samples, centres, 0.1) == (2, pytest.approx(0.8))
    assert mode_coverage_2d(samples, centres, 0.1, min_fraction=0.5) == (1, pytest.approx(0.8))
    assert mode_coverage_2d(samples, centres, 0.01) == (1, pytest.approx(0.2))


def test_non_saturating_gan_covers_more_modes_than_a_collapsed_one():
    # std 0.1 instead of the ring's 0.02 so that 400 steps suffice: seeds 0-7 covered 6-8 modes.
    # The collapsed generator maps all noise to one point whatever the budget: 100 steps.
    trained = train_toy("ring", "ns", steps=400, snapshot_every=200, std=0.1, seed=0)
    collapsed = train_toy("ring", "ns", steps=100, std=0.1, seed=0, collapse=True)
    assert collapsed.samples.unique(dim=0).shape[0] == 1  # every sample is one point
    assert collapsed.coverage[-1].modes_covered <= 1
    assert trained.coverage[-1].modes_covered >= 4
    assert trained.coverage[0].modes_covered == 0  # the untrained generator sits near 0


def test_training_is_seeded_and_leaves_the_global_rng_alone(tmp_path):
    state = torch.random.get_rng_state()
    a = train_toy("grid", "ns", steps=25, snapshot_every=10, n_samples=64, seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)
    b = train_toy("grid", "ns", steps=25, snapshot_every=10, n_samples=64, seed=1)
    c = train_toy("grid", "ns", steps=25, snapshot_every=10, n_samples=64, seed=2)
    assert torch.equal(a.samples, b.samples) and not torch.equal(a.samples, c.samples)
    assert [step for step, _ in a.snapshots] == [0, 10, 20, 25]
    assert len(a.coverage) == 4 and a.samples.shape == (64, 2) and a.centres.shape == (25, 2)

    path = animate(a, tmp_path / "toy.gif")
    with Image.open(path) as gif:
        assert gif.format == "GIF" and gif.n_frames == len(a.snapshots)


@pytest.mark.parametrize("loss", ["minimax", "hinge", "wgan-gp"])
def test_other_losses_train(loss):
    result = train_toy("ring", loss, steps=20, snapshot_every=20, n_samples=32, n_critic=2)
    assert torch.isfinite(result.samples).all()
    assert not torch.equal(result.snapshots[0][1], result.samples)


def test_bad_arguments_error():
    with pytest.raises(GenlabError, match="data must be one of"):
        train_toy("spiral")
    with pytest.raises(GenlabError, match="loss must be one of"):
        train_toy("ring", "lsgan")
    with pytest.raises(GenlabError, match=">= 1"):
        train_toy("ring", steps=0)


def test_streamed_training_yields_what_train_toy_collects_and_draws_d_under_the_points():
    from genlab.toy2d import frame, toy_training

    shots = list(toy_training("ring", "ns", steps=30, snapshot_every=10, n_samples=64, seed=3))
    result = train_toy("ring", "ns", steps=30, snapshot_every=10, n_samples=64, seed=3)
    assert [s.step for s in shots] == [step for step, _ in result.snapshots] == [0, 10, 20, 30]
    assert torch.equal(shots[-1].samples, result.samples)
    assert math.isnan(shots[0].losses[0]) and all(math.isfinite(v) for v in shots[-1].losses)
    image = frame(shots[-1])
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 50  # a heat map, not a flat background
    # the discriminator's own learning rate: another D, other samples
    slow_d = train_toy("ring", "ns", steps=30, snapshot_every=10, n_samples=64, seed=3, lr_d=1e-4)
    assert not torch.equal(slow_d.samples, result.samples)
    with pytest.raises(GenlabError, match="learning rates must be > 0"):
        list(toy_training(lr_d=0.0))
