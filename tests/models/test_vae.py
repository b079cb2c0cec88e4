"""VAE: shapes, the ELBO's parts against Monte-Carlo estimates, IWAE, conditioning, sampling."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from genlab.data import Batch
from genlab.errors import GenlabError
from genlab.models.vae import (
    VAE,
    VAEConfig,
    evaluate_nll,
    gaussian_log_prob,
    kl_standard_normal,
    kl_weight,
)

TINY = VAEConfig(latent_dim=4, widths=(8, 16))


def binary_blobs(n: int, channels: int = 1, size: int = 28, seed: int = 0) -> torch.Tensor:
    """(n, C, S, S) 0/1 images of random axis-aligned rectangles: learnable, BCE floor 0."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, channels, size, size)
    for i in range(n):
        top, left = torch.randint(0, size // 2, (2,), generator=g).tolist()
        h, w = torch.randint(size // 4, size // 2, (2,), generator=g).tolist()
        x[i, :, top : top + h, left : left + w] = 1.0
    return x


def make(config: VAEConfig = TINY, seed: int = 0) -> VAE:
    torch.manual_seed(seed)
    return VAE(config)


@pytest.mark.parametrize(("channels", "size"), [(1, 28), (3, 32), (3, 64)])
def test_shapes(channels, size):
    model = make(dataclasses.replace(TINY, channels=channels, image_size=size))
    x = torch.rand(3, channels, size, size)
    mu, logvar = model.encode_dist(x)
    assert mu.shape == logvar.shape == (3, 4)
    assert model.encode(x).shape == (3, 4)
    x_hat = model.decode(model.reparameterize(mu, logvar))
    assert x_hat.shape == x.shape
    assert x_hat.min() >= 0 and x_hat.max() <= 1
    out = model.elbo(x)
    assert out.elbo.shape == out.recon.shape == out.kl.shape == (3,)
    torch.testing.assert_close(out.elbo, out.recon - out.kl)
    assert model.sample(5).shape == (5, channels, size, size)
    assert model.iwae_log_likelihood(x, k=5, chunk_size=2).shape == (3,)


@pytest.mark.parametrize("size", [0, 30, 27, 12 * 5])
def test_unsupported_image_size_errors(size):
    with pytest.raises(GenlabError, match="unsupported image_size"):
        VAE(dataclasses.replace(TINY, image_size=size))


def test_bad_likelihood_errors():
    with pytest.raises(GenlabError, match="likelihood"):
        VAE(dataclasses.replace(TINY, likelihood="poisson"))


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_overfits_one_batch(likelihood):
    model = make(dataclasses.replace(TINY, likelihood=likelihood))
    batch = Batch(binary_blobs(8), torch.full((8,), -1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first, logs = model.loss(batch)
    assert torch.isfinite(first)
    assert set(logs) == {"recon", "kl", "elbo"} and not any(v.requires_grad for v in logs.values())
    for _ in range(60):
        loss, _ = model.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    # Bernoulli starts near 784 ln 2 = 543 nats; Gaussian at sigma^2 = e^-4 near 9000.
    assert loss.item() < 0.3 * first.item()
    if likelihood == "gaussian":
        assert model.x_logvar.requires_grad and model.x_logvar.item() != TINY.init_logvar


def test_fixed_gaussian_logvar_is_not_a_parameter():
    model = make(dataclasses.replace(TINY, likelihood="gaussian", learn_logvar=False))
    assert "x_logvar" not in dict(model.named_parameters())
    assert model.x_logvar.item() == TINY.init_logvar


def test_gradients_reach_encoder_through_reparameterization():
    model = make()
    loss, _ = model.loss(Batch(binary_blobs(8), torch.full((8,), -1)))
    loss.backward()
    for name, p in model.encoder.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    # The recon term alone (no KL) also reaches the encoder: only through z = mu + sigma * eps.
    model.zero_grad()
    model.elbo(binary_blobs(8)).recon.sum().backward()
    assert model.to_stats.weight.grad.abs().sum() > 0


def test_analytic_kl_matches_monte_carlo():
    g = torch.Generator().manual_seed(1)
    mu = torch.randn(5, 3, generator=g)
    logvar = torch.randn(5, 3, generator=g) * 0.7
    n = 200_000
    z = VAE.reparameterize(mu.expand(n, 5, 3), logvar.expand(n, 5, 3), g)  # (n, 5, 3)
    zeros = torch.zeros(())
    log_q = gaussian_log_prob(z, mu, logvar).sum(-1)
    log_p = gaussian_log_prob(z, zeros, zeros).sum(-1)
    samples = (log_q - log_p).double()  # (n, 5): E_q[log q - log p] = KL
    mc, se = samples.mean(0), samples.std(0) / math.sqrt(n)
    analytic = kl_standard_normal(mu, logvar).double()
    assert ((mc - analytic).abs() < 5 * se).all(), (mc, analytic, se)
    # the model's KL is the same function of its encoder's output
    model = make()
    x = binary_blobs(4)
    torch.testing.assert_close(model.elbo(x).kl, kl_standard_normal(*model.encode_dist(x)))


def test_iwae_k1_matches_the_elbo_and_k_gt_1_is_tighter():
    model = make()
    x = binary_blobs(4)
    with torch.no_grad():
        # Widen q(z|x) (logvar ~ 2 where the prior has 0): the ELBO pays ~9 nats of KL that
        # importance weighting recovers, so the gap is far above Monte-Carlo noise.
        model.to_stats.bias[TINY.latent_dim :] += 2.0
        g = torch.Generator().manual_seed(4)
        elbos = torch.stack([model.elbo(x, generator=g).elbo for _ in range(100)])  # (100, B)
        iwae1s = torch.stack([model.iwae_log_likelihood(x, k=1, generator=g) for _ in range(100)])
        iwae = torch.stack([model.iwae_log_likelihood(x, k=64, generator=g) for _ in range(5)])
    se = elbos.std(0) / math.sqrt(100)
    # k = 1 matches the ELBO in expectation
    assert ((iwae1s.mean(0) - elbos.mean(0)).abs() < 5 * se * math.sqrt(2)).all()
    # k = 64 is above the ELBO on average (Burda et al. 2016, theorem 1)
    assert (iwae.mean(0) > elbos.mean(0)).all()
    assert iwae.mean() - elbos.mean() > 3 * se.mean()


def test_iwae_chunking_does_not_change_the_estimate():
    model = make()
    x = binary_blobs(3)
    with torch.no_grad():
        a = model.iwae_log_likelihood(x, k=10, chunk_size=10, generator=torch.Generator())
        b = model.iwae_log_likelihood(x, k=10, chunk_size=3, generator=torch.Generator())
    assert torch.isfinite(a).all()
    # Different chunking draws eps in a different order, so only the distribution matches:
    # both are bounds on the same log p(x) and close for a near-prior posterior.
    assert (a - b).abs().max() < 5.0


def test_seeded_sampling_reproduces_and_seeds_differ():
    model = make()
    a = model.sample(6, generator=torch.Generator().manual_seed(0))
    b = model.sample(6, generator=torch.Generator().manual_seed(0))
    c = model.sample(6, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_decoder_sampling_is_stochastic_around_the_mean(likelihood):
    config = dataclasses.replace(TINY, likelihood=likelihood, decoder_sampling=True)
    model = make(config)
    mean_model = VAE(dataclasses.replace(config, decoder_sampling=False))
    mean_model.load_state_dict(model.state_dict())
    a = model.sample(8, generator=torch.Generator().manual_seed(0))
    b = model.sample(8, generator=torch.Generator().manual_seed(0))
    mean = mean_model.sample(8, generator=torch.Generator().manual_seed(0))  # same z draws
    assert torch.equal(a, b)
    assert (a - mean).abs().mean() > 0.05
    assert a.min() >= 0 and a.max() <= 1
    if likelihood == "bernoulli":
        assert set(a.unique().tolist()) <= {0.0, 1.0}
        # the fraction of ones matches the mean intensity (6272 pixels: standard error ~0.006)
        assert abs(a.mean() - mean.mean()) < 0.03
    else:
        # Gaussian noise has the model's sigma (before clamping to [0, 1])
        assert (a - mean).abs().mean() < 3 * model.x_logvar.exp().sqrt()


def test_conditional_vae():
    K = 3
    model = make(dataclasses.replace(TINY, num_classes=K))
    x, y = binary_blobs(6), torch.tensor([0, 1, 2, 0, 1, 2])
    loss, _ = model.loss(Batch(x, y))
    assert torch.isfinite(loss)
    z = torch.randn(4, 4)
    assert not torch.allclose(
        model.decode(z, torch.zeros(4, dtype=torch.long)),
        model.decode(z, torch.ones(4, dtype=torch.long)),
    )
    # the label changes the posterior too
    assert not torch.allclose(model.encode(x, y), model.encode(x, (y + 1) % K))
    out = model.sample(4, generator=torch.Generator().manual_seed(0), y=torch.tensor([2, 2, 1, 0]))
    assert out.shape == (4, 1, 28, 28)
    # without y, sample cycles through the classes 0, 1, 2, 0, ...
    cycled = model.sample(5, generator=torch.Generator().manual_seed(0))
    explicit = model.sample(5, generator=torch.Generator().manual_seed(0), y=torch.arange(5) % K)
    assert torch.equal(cycled, explicit)
    with pytest.raises(GenlabError, match="labels"):
        model.encode(x)
    with pytest.raises(GenlabError, match="labels"):
        model.loss(Batch(x, torch.full((6,), -1)))
    with pytest.raises(GenlabError, match="labels"):
        model.sample(2, y=torch.tensor([0, K]))


def test_unconditional_model_ignores_y_in_sample():
    model = make()
    a = model.sample(3, generator=torch.Generator().manual_seed(0))
    b = model.sample(3, generator=torch.Generator().manual_seed(0), y=torch.tensor([1, 2, 3]))
    assert torch.equal(a, b)


def test_channels_last_gives_the_same_outputs():
    model = make(dataclasses.replace(TINY, channels=3, image_size=32))
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        mu, _ = model.encode_dist(x)
        x_hat = model.decode(mu)
        model = model.to(memory_format=torch.channels_last)
        mu_cl, _ = model.encode_dist(x.contiguous(memory_format=torch.channels_last))
        x_hat_cl = model.decode(mu_cl)
    torch.testing.assert_close(mu_cl, mu, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(x_hat_cl, x_hat, rtol=1e-4, atol=1e-5)


def test_evaluate_nll():
    model = make(dataclasses.replace(TINY, num_classes=2))
    images = (binary_blobs(10) * 255).to(torch.uint8)
    labels = torch.arange(10) % 2
    run = lambda: evaluate_nll(  # noqa: E731
        model, images, labels, k=16, batch_size=4, generator=torch.Generator().manual_seed(0)
    )
    res = run()
    assert res.n == 10
    assert res == run()  # reproducible with a seeded generator
    assert res.nll_nats < res.neg_elbo_nats  # the IWAE bound is tighter
    assert math.isclose(res.nll_bpd, res.nll_nats / (784 * math.log(2)))
    assert math.isclose(res.neg_elbo_bpd, res.neg_elbo_nats / (784 * math.log(2)))
    assert not model.training
    with pytest.raises(GenlabError, match="labels"):
        evaluate_nll(model, images, None, k=2)


def test_kl_weight_rises_linearly_over_the_warmup_then_stays_one():
    assert [kl_weight(p, 0.5) for p in (0.0, 0.1, 0.25, 0.5, 0.9, 1.0)] == pytest.approx(
        [0.0, 0.2, 0.5, 1.0, 1.0, 1.0]
    )
    assert kl_weight(0.0, 0.0) == kl_weight(0.3, 0.0) == 1.0


@pytest.mark.parametrize(("progress", "weight"), [(0.0, 0.0), (0.2, 0.5), (0.4, 1.0), (1.0, 1.0)])
def test_kl_warmup_scales_the_kl_term_of_the_loss(progress, weight):
    # loss = -(recon - beta * w(progress) * kl), with the recon and kl the loss itself logs.
    model = make(dataclasses.replace(TINY, beta=2.0, kl_warmup=0.4))
    x = binary_blobs(6)
    loss, logs = model.loss(Batch(x, torch.zeros(6, dtype=torch.long), progress=progress))
    torch.testing.assert_close(loss, -(logs["recon"] - 2.0 * weight * logs["kl"]))
    # Without a warm-up the full beta applies whatever the progress.
    plain = make(dataclasses.replace(TINY, beta=2.0))
    plain_loss, plain_logs = plain.loss(Batch(x, torch.zeros(6, dtype=torch.long), progress=0.0))
    torch.testing.assert_close(plain_loss, -(plain_logs["recon"] - 2.0 * plain_logs["kl"]))
