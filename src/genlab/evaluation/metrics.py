"""Sample-quality metrics on feature vectors and classifier logits.

Every function takes tensors that a feature network has already produced (for genlab, the
Fashion-MNIST classifier of `genlab.evaluation.features`: (N, 128) penultimate features and
(N, 10) logits), so the metrics are independent of the network and testable on synthetic data.

Where torchmetrics fits, it does the work: FD through `FrechetInceptionDistance` with an identity
feature module, KID through its unbiased polynomial-kernel MMD. Written here is what it lacks:
seeded KID subsets, an Inception-score analogue on logits that already exist, and a chunked torch
version of precision/recall/density/coverage (the `prdc` package computes the same numbers and
the tests check against it, but it builds three full distance matrices through scikit-learn and
takes about 30 s at 10k x 10k on two cores, and it prints).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

# Rows of the query set per distance block: a (1024, 60000) float32 block is 245 MB.
_CHUNK = 1024


class PRDC(NamedTuple):
    precision: float
    recall: float
    density: float
    coverage: float


class ModeCoverage(NamedTuple):
    covered: int
    total: int
    missing: list[int]
    shares: Tensor  # (K,) float64, each class's share of the samples


class Memorisation(NamedTuple):
    sample_nn_dist: Tensor  # (N,) distance of each sample to its nearest training image
    test_nn_dist: Tensor  # (M,) the same for held-out real images
    threshold: float  # `threshold_quantile` of test_nn_dist
    copies: int  # samples with sample_nn_dist <= threshold
    copy_fraction: float
    ratio_median: float  # median(sample_nn_dist) / median(test_nn_dist)


def _check_pair(a: Tensor, b: Tensor, name: str) -> None:
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(
            f"{name}: expected two (N, D) tensors with the same D, got {tuple(a.shape)} and "
            f"{tuple(b.shape)}"
        )


# --- Frechet distance -------------------------------------------------------------------------


class _Identity(nn.Module):
    """Feature 'network' for torchmetrics that passes precomputed features through."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, x: Tensor) -> Tensor:
        return x


def frechet_distance(feat_a: Tensor, feat_b: Tensor) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (Heusel et al. 2017).

    Computed by torchmetrics' `FrechetInceptionDistance` fed the features through an identity
    module; its moments and matrix square root are in float64.

    Args:
        feat_a: (N, D) features, N >= 2.
        feat_b: (M, D) features, M >= 2.

    Returns:
        ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)).
    """
    _check_pair(feat_a, feat_b, "frechet_distance")
    if len(feat_a) < 2 or len(feat_b) < 2:
        raise ValueError("frechet_distance: each set needs at least 2 samples")
    from torchmetrics.image.fid import FrechetInceptionDistance  # slow to import: only here

    fid = FrechetInceptionDistance(feature=_Identity(feat_a.shape[1]))
    fid.update(feat_a.detach().cpu().double(), real=True)
    fid.update(feat_b.detach().cpu().double(), real=False)
    return float(fid.compute())


def frechet_distance_from_moments(
    mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor
) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2) (Heusel et al. 2017).

    For cached real-data statistics or exact moments. Tr((S1 S2)^(1/2)) is the sum of the square
    roots of the eigenvalues of S1^(1/2) S2 S1^(1/2), a symmetric PSD matrix, in float64.

    Args:
        mu1: (D,) mean. sigma1: (D, D) covariance. mu2: (D,) mean. sigma2: (D, D) covariance.
    """
    mu1, sigma1, mu2, sigma2 = (t.detach().cpu().double() for t in (mu1, sigma1, mu2, sigma2))
    evals, evecs = torch.linalg.eigh(sigma1)
    sqrt_s1 = evecs @ torch.diag(evals.clamp(min=0).sqrt()) @ evecs.T  # S1^(1/2)
    tr_sqrt = torch.linalg.eigvalsh(sqrt_s1 @ sigma2 @ sqrt_s1).clamp(min=0).sqrt().sum()
    fd = (mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace() - 2 * tr_sqrt
    return float(fd)


# --- KID --------------------------------------------------------------------------------------


def kernel_inception_distance(
    feat_a: Tensor,
    feat_b: Tensor,
    subsets: int = 100,
    subset_size: int = 1000,
    generator: torch.Generator | None = None,
) -> tuple[float, float]:
    """Unbiased MMD^2 with the cubic polynomial kernel, over random subsets (Binkowski et al. 2018).

    k(x, y) = (x.y / D + 1)^3. Each subset draws `subset_size` rows of each set without
    replacement; the MMD^2 estimate is torchmetrics' `poly_mmd` in float64. Subsets are drawn
    with `generator` (torchmetrics' own class uses the global RNG, so it cannot be seeded cleanly).

    Args:
        feat_a: (N, D) real features. feat_b: (M, D) generated features.
        subsets: number of subsets. subset_size: rows per subset, at most min(N, M).
        generator: for the subset draws.

    Returns:
        (mean, std) of the estimate over subsets; the mean can be slightly negative.
    """
    from torchmetrics.image.kid import poly_mmd  # slow to import: only here

    _check_pair(feat_a, feat_b, "kernel_inception_distance")
    if not 2 <= subset_size <= min(len(feat_a), len(feat_b)):
        raise ValueError(
            f"kernel_inception_distance: subset_size={subset_size} must be in [2, "
            f"{min(len(feat_a), len(feat_b))}] (the smaller set's size)"
        )
    a, b = feat_a.detach().cpu().double(), feat_b.detach().cpu().double()
    scores = torch.empty(subsets, dtype=torch.float64)
    for s in range(subsets):
        ia = torch.randperm(len(a), generator=generator)[:subset_size]
        ib = torch.randperm(len(b), generator=generator)[:subset_size]
        scores[s] = poly_mmd(a[ia], b[ib], degree=3, gamma=None, coef=1.0)
    return float(scores.mean()), float(scores.std(correction=0))


# --- precision, recall, density, coverage -----------------------------------------------------


def _kth_nn_radii(x: Tensor, k: int) -> Tensor:
    """(N,) distance of each row of x to its k-th nearest other row."""
    radii = torch.empty(len(x), dtype=x.dtype)
    for i in range(0, len(x), _CHUNK):
        d = torch.cdist(x[i : i + _CHUNK], x)  # (c, N), includes the point itself at ~0
        radii[i : i + _CHUNK] = d.topk(k + 1, dim=1, largest=False).values[:, -1]
    return radii


def precision_recall_density_coverage(real: Tensor, fake: Tensor, k: int = 5) -> PRDC:
    """Manifold precision/recall and density/coverage of generated features.

    Precision/recall: Kynkaanniemi et al. 2019. Density/coverage: Naeem et al. 2020.

    The same definitions as `prdc.compute_prdc` (checked against it in the tests), computed in
    row blocks of the real-fake distance matrix so memory stays O(block x M).

    Args:
        real: (N, D) real features. fake: (M, D) generated features.
        k: neighbours that set each point's ball radius.

    Returns:
        precision: share of fakes inside some real ball. recall: share of reals inside some fake
        ball. density: mean number of real balls holding a fake, over k (about 1 when the sets
        match). coverage: share of real balls that hold at least one fake.
    """
    _check_pair(real, fake, "precision_recall_density_coverage")
    if not 1 <= k < min(len(real), len(fake)):
        raise ValueError(f"precision_recall_density_coverage: k={k} must be in [1, min(N, M) - 1]")
    real, fake = real.detach().cpu().float(), fake.detach().cpu().float()
    r_real, r_fake = _kth_nn_radii(real, k), _kth_nn_radii(fake, k)  # (N,), (M,)
    fake_in_any = torch.zeros(len(fake), dtype=torch.bool)
    fake_ball_count = torch.zeros(len(fake), dtype=torch.float64)
    real_in_fake = torch.empty(len(real), dtype=torch.bool)
    real_covered = torch.empty(len(real), dtype=torch.bool)
    for i in range(0, len(real), _CHUNK):
        d = torch.cdist(real[i : i + _CHUNK], fake)  # (c, M)
        inside_real = d < r_real[i : i + _CHUNK, None]  # fake j in real ball i
        fake_in_any |= inside_real.any(dim=0)
        fake_ball_count += inside_real.sum(dim=0)
        real_in_fake[i : i + _CHUNK] = (d < r_fake[None, :]).any(dim=1)
        real_covered[i : i + _CHUNK] = d.min(dim=1).values < r_real[i : i + _CHUNK]
    return PRDC(
        precision=float(fake_in_any.double().mean()),
        recall=float(real_in_fake.double().mean()),
        density=float(fake_ball_count.mean() / k),
        coverage=float(real_covered.double().mean()),
    )


# --- classifier-based metrics -----------------------------------------------------------------


def inception_score(
    logits: Tensor, splits: int = 10, generator: torch.Generator | None = None
) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))) on classifier logits (Salimans et al. 2016).

    Samples are shuffled with `generator` before splitting: samples generated class by class
    would otherwise give one class per split and a score near 1.

    Args:
        logits: (N, K) classifier logits. splits: disjoint parts the score is computed on.

    Returns:
        (mean, std) over splits (population std, as in the original code). Between 1 and K.
    """
    if logits.ndim != 2 or len(logits) < splits:
        raise ValueError(f"inception_score: expected (N, K) logits with N >= splits={splits}")
    logp_yx = logits.detach().cpu().double().log_softmax(dim=1)  # (N, K)
    logp_yx = logp_yx[torch.randperm(len(logp_yx), generator=generator)]
    scores = []
    for part in logp_yx.chunk(splits):
        logp_y = part.exp().mean(dim=0).log()  # (K,) marginal over the split
        kl = (part.exp() * (part - logp_y)).sum(dim=1)  # (n,)
        scores.append(kl.mean().exp())
    scores = torch.stack(scores)
    return float(scores.mean()), float(scores.std(correction=0))


def _labels(logits_or_labels: Tensor) -> Tensor:
    """(N,) integer labels from (N, K) logits (argmax) or (N,) labels."""
    if logits_or_labels.ndim == 2:
        return logits_or_labels.detach().argmax(dim=1).cpu()
    if logits_or_labels.ndim == 1 and not logits_or_labels.is_floating_point():
        return logits_or_labels.detach().cpu().long()
    raise ValueError("expected (N, K) logits or (N,) integer labels")


def class_histogram(logits_or_labels: Tensor, num_classes: int) -> Tensor:
    """Samples per predicted class.

    Args:
        logits_or_labels: (N, K) logits (argmax is taken) or (N,) integer labels.
        num_classes: K.

    Returns:
        (K,) int64 counts.
    """
    labels = _labels(logits_or_labels)
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"class_histogram: labels must be in [0, {num_classes})")
    return torch.bincount(labels, minlength=num_classes)


def mode_coverage(
    hist: Tensor, expected: Tensor | None = None, min_share: float = 0.2
) -> ModeCoverage:
    """How many classes get at least `min_share` x their expected share of the samples.

    The default 0.2 flags a class only when it gets under a fifth of its fair share (under 2% of
    the samples with 10 balanced classes). That is far outside sampling noise at a few thousand
    samples and above most of the mass a classifier with ~10% error leaks into a class the
    generator never makes, yet tolerant of a generator that is merely unbalanced. (A class the
    classifier confuses often, e.g. shirt -> T-shirt, can still look covered when missing.)

    Args:
        hist: (K,) counts, e.g. from `class_histogram`.
        expected: (K,) expected class proportions or counts (normalised here); uniform if None.
        min_share: a class is covered when share >= min_share * expected share.

    Returns:
        covered, total (K), missing class indices, and shares (K,) float64.
    """
    hist = hist.detach().cpu().double()
    if hist.ndim != 1 or hist.sum() <= 0:
        raise ValueError("mode_coverage: hist must be a non-empty (K,) histogram")
    exp = torch.ones_like(hist) if expected is None else expected.detach().cpu().double()
    if exp.shape != hist.shape or (exp < 0).any() or exp.sum() <= 0:
        raise ValueError("mode_coverage: expected must be (K,) non-negative with a positive sum")
    shares, exp = hist / hist.sum(), exp / exp.sum()
    ok = shares >= min_share * exp
    missing = (~ok).nonzero().flatten().tolist()
    return ModeCoverage(int(ok.sum()), len(hist), missing, shares)


def conditional_accuracy(logits: Tensor, requested_labels: Tensor) -> float:
    """Share of samples the classifier assigns to the class they were generated for.

    Args:
        logits: (N, K) classifier logits of class-conditional samples.
        requested_labels: (N,) the classes requested from the generator.
    """
    pred = _labels(logits)
    if pred.shape != requested_labels.shape:
        raise ValueError("conditional_accuracy: need one requested label per sample")
    return float((pred == requested_labels.cpu()).double().mean())


# --- memorisation -----------------------------------------------------------------------------


def nearest_neighbour_distances(query: Tensor, reference: Tensor) -> Tensor:
    """Euclidean distance of each query row to its nearest reference row.

    The search runs in float32 blocks (||r||^2 - 2 q.r, argmin per row); the distance to the
    chosen neighbour is then recomputed exactly in float64, so an exact copy gives 0.

    Args:
        query: (N, D). reference: (M, D); images may be passed flattened or as (M, C, H, W).

    Returns:
        (N,) float64 distances.
    """
    q = query.detach().cpu().flatten(1)
    r = reference.detach().cpu().flatten(1)
    _check_pair(q, r, "nearest_neighbour_distances")
    q32, r32 = q.float(), r.float()
    r_sq = r32.square().sum(dim=1)  # (M,)
    idx = torch.empty(len(q), dtype=torch.long)
    for i in range(0, len(q), _CHUNK):
        score = torch.addmm(r_sq, q32[i : i + _CHUNK], r32.T, alpha=-2)  # (c, M): d^2 - ||q||^2
        idx[i : i + _CHUNK] = score.argmin(dim=1)
    return (q.double() - r[idx].double()).norm(dim=1)


def memorisation(
    samples: Tensor,
    train: Tensor,
    test: Tensor | None,
    threshold_quantile: float = 0.01,
    *,
    test_nn_dist: Tensor | None = None,
) -> Memorisation:
    """Flag samples that are near-copies of training images.

    Each sample's distance to its nearest training image is compared with the same distance for
    held-out real images: those are not copies, so the `threshold_quantile` of their distances
    is a calibrated threshold (a generator of fresh images has about that share flagged).
    Works in whatever space is passed (flattened pixels or features), the same for all three.

    Args:
        samples: (N, ...) generated images or their features.
        train: (M, ...) training set, same space. test: (T, ...) held-out set, same space.
        threshold_quantile: quantile of the test distances below which a sample is a copy.
        test_nn_dist: the test distances computed before (they depend only on the data, so an
            evaluator caches them); then `test` may be None.

    Returns:
        Memorisation with per-sample and per-test distances, threshold, copy count and share,
        and median(sample distance) / median(test distance) (well below 1: memorising).
    """
    d_sample = nearest_neighbour_distances(samples, train)  # (N,)
    if test_nn_dist is None:
        if test is None:
            raise ValueError("memorisation: pass the test set or its distances test_nn_dist")
        test_nn_dist = nearest_neighbour_distances(test, train)
    d_test = test_nn_dist.double()  # (T,)
    threshold = float(torch.quantile(d_test, threshold_quantile))
    copies = int((d_sample <= threshold).sum())
    ratio = float(d_sample.median() / d_test.median().clamp(min=1e-12))
    return Memorisation(d_sample, d_test, threshold, copies, copies / len(d_sample), ratio)


# --- everything -------------------------------------------------------------------------------


def all_metrics(
    real_features: Tensor,
    fake_features: Tensor,
    fake_logits: Tensor | None,
    *,
    num_classes: int,
    requested: Tensor | None = None,
    train_for_memorisation: Tensor | None = None,
    test_for_memorisation: Tensor | None = None,
    samples_for_memorisation: Tensor | None = None,
    kid_subsets: int = 100,
    k: int = 5,
    generator: torch.Generator | None = None,
) -> dict[str, float | int | list[int] | None]:
    """Every metric, as a flat JSON-ready dict with a fixed key set.

    Keys (None where the inputs for it were not given):
        fd: Frechet distance, real vs fake features.
        fid_inception: None here; the evaluator sets it to fd where the features are the
            standard FID Inception-v3 (`genlab eval --features inception`).
        kid_mean, kid_std: KID over `kid_subsets` subsets of min(1000, N, M) rows.
        precision, recall, density, coverage: k-NN manifold metrics.
        is_mean, is_std: Inception-score analogue over 10 splits of the fake logits.
        class_histogram: list of K counts of predicted classes of the fakes.
        modes_covered, modes_total, missing_classes: `mode_coverage` with min_share 0.2, against
            the histogram of `requested` when given, else uniform.
        conditional_accuracy: share classified as requested (None unless `requested`).
        memorised_count, memorised_fraction, memorisation_threshold, nn_ratio: `memorisation`
            (None unless train and test sets are given).

    Args:
        real_features: (N, D) features of real images. fake_features: (M, D) of generated ones.
        fake_logits: (M, K) classifier logits of the generated images (None: no classifier, so
            the class metrics, IS, histogram, modes and conditional accuracy, are None).
        num_classes: K.
        requested: (M,) requested classes for a class-conditional generator.
        train_for_memorisation, test_for_memorisation: training and held-out sets in the space
            of `samples_for_memorisation` (default: `fake_features`, so pass their features).
        samples_for_memorisation: the generated images in that space (e.g. flattened pixels).
        kid_subsets: KID subsets. k: neighbours for PRDC.
        generator: for KID subsets and the Inception-score split.
    """
    kid_mean, kid_std = kernel_inception_distance(
        real_features,
        fake_features,
        subsets=kid_subsets,
        subset_size=min(1000, len(real_features), len(fake_features)),
        generator=generator,
    )
    prdc = precision_recall_density_coverage(real_features, fake_features, k=k)
    out: dict[str, float | int | list[int] | None]
    if fake_logits is None:
        is_mean = is_std = hist = None
        modes = ModeCoverage(None, None, None, None)  # type: ignore[arg-type]
    else:
        is_mean, is_std = inception_score(fake_logits, splits=10, generator=generator)
        hist = class_histogram(fake_logits, num_classes)
        expected = None if requested is None else class_histogram(requested, num_classes)
        modes = mode_coverage(hist, expected)
    out = {
        "fd": frechet_distance(real_features, fake_features),
        "fid_inception": None,
        "kid_mean": kid_mean,
        "kid_std": kid_std,
        **prdc._asdict(),
        "is_mean": is_mean,
        "is_std": is_std,
        "class_histogram": None if hist is None else hist.tolist(),
        "modes_covered": modes.covered,
        "modes_total": modes.total,
        "missing_classes": modes.missing,
        "conditional_accuracy": None,
        "memorised_count": None,
        "memorised_fraction": None,
        "memorisation_threshold": None,
        "nn_ratio": None,
    }
    if requested is not None and fake_logits is not None:
        out["conditional_accuracy"] = conditional_accuracy(fake_logits, requested)
    if (train_for_memorisation is None) != (test_for_memorisation is None):
        raise ValueError("all_metrics: pass both train_ and test_for_memorisation, or neither")
    if train_for_memorisation is not None:
        samples = fake_features if samples_for_memorisation is None else samples_for_memorisation
        mem = memorisation(samples, train_for_memorisation, test_for_memorisation)
        out["memorised_count"] = mem.copies
        out["memorised_fraction"] = mem.copy_fraction
        out["memorisation_threshold"] = mem.threshold
        out["nn_ratio"] = mem.ratio_median
    return out


METRIC_KEYS = (
    "fd", "fid_inception", "kid_mean", "kid_std", "precision", "recall", "density", "coverage",
    "is_mean", "is_std", "class_histogram", "modes_covered", "modes_total", "missing_classes",
    "conditional_accuracy", "memorised_count", "memorised_fraction", "memorisation_threshold",
    "nn_ratio",
)  # fmt: skip
"""The keys of `all_metrics`' result, in order: the JSON schema of an evaluation."""
