"""Correctness of the sample-quality metrics on synthetic features with known answers."""

from __future__ import annotations

import contextlib
import io
import json
import math

import numpy as np
import pytest
import scipy.linalg
import torch
from torchmetrics.image.inception import InceptionScore
from torchmetrics.image.kid import poly_kernel

from genlab.evaluation import metrics as M


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _random_spd(d: int, g: torch.Generator) -> torch.Tensor:
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    return a @ a.T / d + 0.1 * torch.eye(d, dtype=torch.float64)


def _gaussian(n: int, mu: torch.Tensor, sigma: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    z = torch.randn(n, len(mu), generator=g, dtype=torch.float64)
    return mu + z @ torch.linalg.cholesky(sigma).T


def _scipy_fd(mu1, s1, mu2, s2) -> float:
    covmean = scipy.linalg.sqrtm(s1.numpy() @ s2.numpy()).real
    return float(((mu1 - mu2) ** 2).sum() + s1.trace() + s2.trace() - 2 * np.trace(covmean))


# --- FD ---------------------------------------------------------------------------------------


def test_fd_of_a_set_with_itself_is_zero():
    g = _gen()
    x = torch.rand(5000, 128, generator=g) * 3 + 1  # offset mean, like ReLU features
    fd = M.frechet_distance(x, x)
    scale = x.double().T.cov().trace().item()
    assert abs(fd) < 1e-9 * scale


@pytest.mark.kernels
def test_fd_from_moments_matches_scipy_and_the_diagonal_closed_form():
    g = _gen(1)
    d = 6
    mu1, mu2 = torch.randn(d, generator=g, dtype=torch.float64), torch.zeros(d, dtype=torch.float64)
    s1, s2 = _random_spd(d, g), _random_spd(d, g)  # do not commute
    assert M.frechet_distance_from_moments(mu1, s1, mu2, s2) == pytest.approx(
        _scipy_fd(mu1, s1, mu2, s2), rel=1e-9
    )
    # Diagonal covariances: Tr((S1 S2)^(1/2)) = sum sqrt(a_i b_i),
    # so FD = |mu1 - mu2|^2 + |sqrt(a) - sqrt(b)|^2.
    a = torch.rand(d, generator=g, dtype=torch.float64) + 0.5
    b = torch.rand(d, generator=g, dtype=torch.float64) + 0.5
    exact = (mu1 - mu2).square().sum() + (a.sqrt() - b.sqrt()).square().sum()
    fd = M.frechet_distance_from_moments(mu1, torch.diag(a), mu2, torch.diag(b))
    assert fd == pytest.approx(float(exact), rel=1e-10)


def test_fd_matches_closed_form_for_two_gaussians():
    g = _gen(2)
    d, n = 4, 200_000
    mu1, mu2 = torch.randn(d, generator=g, dtype=torch.float64), torch.zeros(d, dtype=torch.float64)
    s1, s2 = _random_spd(d, g), 2 * _random_spd(d, g)
    exact = M.frechet_distance_from_moments(mu1, s1, mu2, s2)
    x1, x2 = _gaussian(n, mu1, s1, g), _gaussian(n, mu2, s2, g)
    fd = M.frechet_distance(x1, x2)
    # torchmetrics path equals the closed form on the sample moments to round-off ...
    sample = M.frechet_distance_from_moments(x1.mean(0), x1.T.cov(), x2.mean(0), x2.T.cov())
    assert fd == pytest.approx(sample, rel=1e-8)
    # ... and the exact moments within sampling error (std error here is about 0.5% of FD).
    assert fd == pytest.approx(exact, rel=0.03)
    assert exact > 1.0  # the test is not trivially near zero


# --- KID --------------------------------------------------------------------------------------


def test_kid_is_unbiased_on_equal_distributions_and_positive_on_different_ones():
    g = _gen(3)
    d, n, seeds = 8, 50, 200
    unbiased, biased, shifted = [], [], []
    for _ in range(seeds):
        x, y = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
        unbiased.append(M.kernel_inception_distance(x, y, subsets=1, subset_size=n, generator=g)[0])
        k = [poly_kernel(a.double(), b.double()).mean() for a, b in ((x, x), (y, y), (x, y))]
        biased.append(float(k[0] + k[1] - 2 * k[2]))  # V-statistic: biased upwards
        shifted.append(M.kernel_inception_distance(x, y + 0.5, 1, n, generator=g)[0])
    unbiased, biased, shifted = map(torch.tensor, (unbiased, biased, shifted))
    se = unbiased.std() / math.sqrt(seeds)
    assert abs(unbiased.mean()) < 4 * se
    assert biased.mean() > 4 * se  # the check above can detect a biased estimator
    assert shifted.mean() > 20 * se


def test_kid_is_reproducible_with_a_generator_and_reports_a_spread():
    g = _gen(4)
    x, y = torch.randn(500, 16, generator=g), torch.randn(500, 16, generator=g) + 0.2
    a = M.kernel_inception_distance(x, y, subsets=20, subset_size=100, generator=_gen(7))
    b = M.kernel_inception_distance(x, y, subsets=20, subset_size=100, generator=_gen(7))
    assert a == b and a[1] > 0
    with pytest.raises(ValueError, match="subset_size"):
        M.kernel_inception_distance(x, y, subset_size=501)


# --- precision, recall, density, coverage -----------------------------------------------------


def _modes(n: int, modes: list[int], g: torch.Generator, d: int = 8) -> torch.Tensor:
    """n points from an equal mixture of unit Gaussians centred at 20 * e_m for m in modes."""
    centres = 20 * torch.eye(10, d)[modes]  # (len(modes), d)
    which = torch.randint(len(modes), (n,), generator=g)
    return centres[which] + torch.randn(n, d, generator=g)


@pytest.mark.kernels
def test_prdc_matches_the_prdc_package():
    from prdc import compute_prdc

    g = _gen(5)
    real, fake = torch.randn(600, 10, generator=g), torch.randn(500, 10, generator=g) * 1.3 + 0.2
    with contextlib.redirect_stdout(io.StringIO()):  # prdc prints
        ref = compute_prdc(real.numpy(), fake.numpy(), nearest_k=5)
    ours = M.precision_recall_density_coverage(real, fake, k=5)
    for key, value in ref.items():
        assert getattr(ours, key) == pytest.approx(float(value), abs=0.004), key


def test_prdc_on_toy_distributions_with_known_answers():
    g = _gen(6)
    real = _modes(2000, list(range(10)), g)
    same = M.precision_recall_density_coverage(real, _modes(2000, list(range(10)), g))
    assert same.precision > 0.9 and same.recall > 0.9
    assert same.density == pytest.approx(1.0, abs=0.15) and same.coverage > 0.9

    half = M.precision_recall_density_coverage(real, _modes(2000, list(range(5)), g))
    assert half.precision > 0.9
    assert half.recall == pytest.approx(0.5, abs=0.05)
    assert half.coverage == pytest.approx(0.5, abs=0.05)

    far = M.precision_recall_density_coverage(real, _modes(2000, list(range(10)), g) + 100)
    assert far == M.PRDC(0.0, 0.0, 0.0, 0.0)


# --- classifier-based metrics -----------------------------------------------------------------


def _confident(labels: torch.Tensor, k: int = 10) -> torch.Tensor:
    return 30.0 * torch.nn.functional.one_hot(labels, k).float()  # (N, K) logits


def test_inception_score_on_uniform_and_collapsed_predictions():
    labels = torch.arange(1000) % 10  # balanced, confident
    assert M.inception_score(_confident(labels), splits=1)[0] == pytest.approx(10.0, rel=1e-6)
    # Sorted by class: without the shuffle every split would hold one class and score ~1.
    mean, std = M.inception_score(_confident(labels.sort().values), splits=10, generator=_gen())
    assert 9.0 < mean <= 10.0 and std < 0.5
    assert M.inception_score(_confident(torch.zeros(1000, dtype=torch.long)))[0] == pytest.approx(
        1.0, abs=1e-6
    )


class _Identity(torch.nn.Module):
    def forward(self, x):
        return x


@pytest.mark.kernels
@pytest.mark.filterwarnings("ignore::UserWarning")  # torchmetrics: buffer size, std of 1 split
def test_inception_score_matches_torchmetrics_on_one_split():
    logits = torch.randn(400, 10, generator=_gen(8)) * 3
    ref = InceptionScore(feature=_Identity(), splits=1)
    ref.update(logits.double())
    assert M.inception_score(logits, splits=1)[0] == pytest.approx(float(ref.compute()[0]))


def test_mode_coverage_catches_a_generator_stuck_on_three_classes():
    g = _gen(9)
    labels = torch.tensor([1, 4, 7])[torch.randint(3, (10_000,), generator=g)]
    leak = torch.rand(10_000, generator=g) < 0.05  # classifier errors spread over all classes
    labels[leak] = torch.randint(10, (int(leak.sum()),), generator=g)
    logits = _confident(labels) + torch.randn(10_000, 10, generator=g)
    cov = M.mode_coverage(M.class_histogram(logits, 10))
    assert (cov.covered, cov.total, cov.missing) == (3, 10, [0, 2, 3, 5, 6, 8, 9])
    assert cov.shares.sum() == pytest.approx(1.0)

    balanced = M.class_histogram(torch.randint(10, (10_000,), generator=g), 10)
    assert M.mode_coverage(balanced).covered == 10
    # Against a non-uniform expectation: class 0 expected to be 91% of the samples.
    expected = torch.tensor([91.0] + [1.0] * 9)
    assert M.mode_coverage(balanced, expected).missing == [0]


def test_class_histogram_and_conditional_accuracy():
    requested = torch.arange(1000) % 10
    predicted = requested.clone()
    predicted[:300] = (predicted[:300] + 1) % 10  # 30% classified as the wrong class
    logits = _confident(predicted)
    assert M.conditional_accuracy(logits, requested) == pytest.approx(0.7)
    assert M.class_histogram(logits, 10).tolist() == [100] * 10
    assert M.class_histogram(torch.tensor([0, 2, 2]), 4).tolist() == [1, 0, 2, 0]
    with pytest.raises(ValueError, match="labels"):
        M.class_histogram(torch.tensor([0, 5]), 4)


# --- memorisation -----------------------------------------------------------------------------


def test_memorisation_flags_copied_training_images_and_not_fresh_ones():
    g = _gen(10)
    images = torch.rand(3000, 1, 12, 12, generator=g).round() * torch.rand(
        3000, 1, 1, 1, generator=g
    )
    train, test, fresh = images[:2000], images[2000:2500], images[2500:]
    copied = train[torch.randperm(2000, generator=g)[:40]]
    samples = torch.cat([fresh[:460], copied])  # 460 fresh + 40 copies

    mem = M.memorisation(samples, train, test)
    assert (mem.sample_nn_dist[460:] == 0).all() and mem.threshold > 0
    assert 40 <= mem.copies <= 40 + 15  # about 1% of the fresh ones by construction
    assert mem.copy_fraction == mem.copies / 500
    assert mem.sample_nn_dist.shape == (500,) and mem.test_nn_dist.shape == (500,)

    clean = M.memorisation(fresh, train, test)
    assert clean.copy_fraction < 0.05
    assert clean.ratio_median == pytest.approx(1.0, abs=0.1)
    assert M.memorisation(copied, train, test).ratio_median == 0.0


def test_nearest_neighbour_distances_match_brute_force():
    g = _gen(11)
    q, r = torch.randn(300, 20, generator=g), torch.randn(2500, 20, generator=g)
    exact = torch.cdist(q.double(), r.double()).min(dim=1).values
    torch.testing.assert_close(M.nearest_neighbour_distances(q, r), exact)


# --- everything -------------------------------------------------------------------------------


def test_all_metrics_has_a_fixed_json_key_set():
    g = _gen(12)
    real, fake = torch.randn(300, 16, generator=g), torch.randn(300, 16, generator=g)
    logits = torch.randn(300, 10, generator=g)
    plain = M.all_metrics(real, fake, logits, num_classes=10, kid_subsets=5, generator=g)
    assert tuple(plain) == M.METRIC_KEYS
    assert plain["conditional_accuracy"] is None and plain["nn_ratio"] is None
    assert sum(plain["class_histogram"]) == 300 and plain["modes_total"] == 10

    full = M.all_metrics(
        real,
        fake,
        logits,
        num_classes=10,
        requested=torch.arange(300) % 10,
        train_for_memorisation=torch.randn(1000, 16, generator=g),
        test_for_memorisation=real,
        kid_subsets=5,
        generator=g,
    )
    assert tuple(full) == M.METRIC_KEYS
    assert all(v is not None for k, v in full.items() if k != "fid_inception")  # the evaluator's
    json.dumps(full)  # JSON-ready: plain floats, ints, lists

    # without logits (Inception weights without a classifier layer): no class metrics
    bare = M.all_metrics(real, fake, None, num_classes=0, kid_subsets=5, generator=g)
    assert tuple(bare) == M.METRIC_KEYS and bare["fd"] == pytest.approx(plain["fd"])
    class_keys = ("is_mean", "is_std", "class_histogram", "modes_covered", "modes_total")
    assert all(bare[k] is None for k in class_keys)
    json.dumps(bare)
    assert all(type(full[k]) is float for k in ("fd", "kid_mean", "precision", "nn_ratio"))
