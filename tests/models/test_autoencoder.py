"""Autoencoder: shapes, overfitting, the running latent fit that `sample` draws from."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from genlab.data import Batch
from genlab.errors import GenlabError
from genlab.models.autoencoder import Autoencoder, AutoencoderConfig, conv_levels

TINY = AutoencoderConfig(latent_dim=4, widths=(8, 16))


def blobs(n: int, size: int = 28, seed: int = 0) -> torch.Tensor:
    """(n, 1, S, S) 0/1 images of random rectangles."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 1, size, size)
    for i in range(n):
        top, left = torch.randint(0, size // 2, (2,), generator=g).tolist()
        h, w = torch.randint(size // 4, size // 2, (2,), generator=g).tolist()
        x[i, :, top : top + h, left : left + w] = 1.0
    return x


def make(config: AutoencoderConfig = TINY) -> Autoencoder:
    torch.manual_seed(0)
    return Autoencoder(config)


@pytest.mark.parametrize(("size", "expected"), [(28, (2, 7)), (32, (3, 4)), (64, (4, 4))])
def test_conv_levels(size, expected):
    assert conv_levels(size) == expected


@pytest.mark.parametrize(("channels", "size"), [(1, 28), (3, 32), (3, 64)])
def test_shapes(channels, size):
    model = make(dataclasses.replace(TINY, channels=channels, image_size=size))
    x = torch.rand(3, channels, size, size)
    z = model.encode(x)
    assert z.shape == (3, 4)
    x_hat = model.decode(z)
    assert x_hat.shape == x.shape == model(x).shape
    assert x_hat.min() >= 0 and x_hat.max() <= 1
    assert model.sample(5).shape == (5, channels, size, size)


def test_bad_config_errors():
    with pytest.raises(GenlabError, match="unsupported image_size"):
        Autoencoder(dataclasses.replace(TINY, image_size=30))
    with pytest.raises(GenlabError, match="recon_loss"):
        Autoencoder(dataclasses.replace(TINY, recon_loss="l1"))
    with pytest.raises(GenlabError, match="widths"):
        Autoencoder(dataclasses.replace(TINY, widths=()))


@pytest.mark.parametrize("recon_loss", ["bce", "mse"])
def test_overfits_one_batch(recon_loss):
    model = make(dataclasses.replace(TINY, recon_loss=recon_loss))
    batch = Batch(blobs(8), torch.full((8,), -1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first, logs = model.loss(batch)
    assert torch.isfinite(first) and set(logs) == {"recon"} and not logs["recon"].requires_grad
    for _ in range(60):
        loss, _ = model.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    # MSE through a sigmoid learns slower than BCE; both fall by a clear factor
    assert loss.item() < (0.3 if recon_loss == "bce" else 0.6) * first.item()


def test_latent_stats_track_codes_in_training_only():
    model = make(dataclasses.replace(TINY, latent_momentum=1.0))  # momentum 1: last batch's fit
    batch = Batch(blobs(32), torch.full((32,), -1))
    model.eval()
    model.loss(batch)
    assert torch.equal(model.z_mean, torch.zeros(4)) and torch.equal(model.z_std, torch.ones(4))
    model.train()
    model.loss(batch)
    with torch.no_grad():
        z = model.encode(batch.x)
    torch.testing.assert_close(model.z_mean, z.mean(0))
    torch.testing.assert_close(model.z_std, z.std(0))
    assert "z_mean" in model.state_dict()  # saved with the weights


def test_sample_draws_from_the_fitted_gaussian():
    model = make()
    model.z_mean.fill_(3.0)
    model.z_std.fill_(0.5)
    g = torch.Generator().manual_seed(0)
    eps = torch.randn(4, 4, generator=g)
    expected = model.decode(3.0 + 0.5 * eps)
    torch.testing.assert_close(
        model.sample(4, generator=torch.Generator().manual_seed(0)), expected
    )


def test_seeded_sampling_reproduces_and_seeds_differ():
    model = make()
    a = model.sample(4, generator=torch.Generator().manual_seed(0))
    b = model.sample(4, generator=torch.Generator().manual_seed(0))
    c = model.sample(4, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_gradients_reach_encoder():
    model = make()
    loss, _ = model.loss(Batch(blobs(8), torch.full((8,), -1)))
    loss.backward()
    for name, p in model.encoder.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_latent_statistics_stay_fp32_under_bf16_autocast():
    # CPUs with native bf16 (AVX-512-BF16, AMX) train under autocast: z is then bf16.
    model = make()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _ = model.loss(Batch(blobs(8), torch.zeros(8, dtype=torch.long)))
    assert loss.isfinite() and model.z_mean.dtype == torch.float32
    assert model.z_mean.abs().sum() > 0
