"""Aggregate scores of several runs as the RL community now reports them (Agarwal et al. 2021,
"Deep reinforcement learning at the edge of the statistical precipice"; their library rliable):
the interquartile mean (IQM) of the runs' scores with a stratified-bootstrap confidence interval.

A score matrix is (runs, tasks): one score per run and task, here a run's mean greedy return
over its evaluation episodes on one environment. The IQM is the mean of the middle 50% of all
its entries (scipy's trim_mean with 25% cut at each end, as rliable computes it): robust to an
outlier run, and less noisy than the median. The interval resamples runs with replacement within
each task (stratified bootstrap) and takes the percentiles of the statistic
(tests/rl/test_aggregate.py checks both against rliable; bench/rliable_crosscheck.py runs
rliable itself).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Interval(NamedTuple):
    """A point estimate with its (1 - alpha) bootstrap confidence interval."""

    value: float
    low: float
    high: float


def iqm(scores: np.ndarray) -> float:
    """The interquartile mean of all entries of `scores` (any shape).

    Of m values, floor(m / 4) are cut at each end and the rest averaged (scipy.stats.trim_mean
    with proportiontocut 0.25 on the flattened array).
    """
    x = np.sort(np.asarray(scores, dtype=np.float64).ravel())
    if x.size == 0:
        raise ValueError("iqm: no scores")
    cut = int(0.25 * x.size)
    return float(x[cut : x.size - cut].mean())


def bootstrap_interval(
    scores: np.ndarray,
    statistic=iqm,
    reps: int = 50_000,
    alpha: float = 0.05,
    seed: int = 0,
) -> Interval:
    """`statistic` of a (runs, tasks) score matrix with its percentile bootstrap interval.

    Each replicate draws, for every task, as many runs as there are with replacement
    (stratified by task) and computes `statistic` on the resampled matrix.

    Args:
        scores: (runs, tasks), or (runs,) for one task.
        reps: bootstrap replicates (rliable's default 50,000).
        alpha: 1 - the interval's coverage (0.05: 95%).
        seed: the resampling's seed (the same seed, the same interval).
    """
    x = np.asarray(scores, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"bootstrap_interval: expected (runs, tasks) scores, got {x.shape}")
    runs, tasks = x.shape
    rng = np.random.default_rng(seed)
    index = rng.integers(0, runs, size=(reps, runs, tasks))  # per task, runs with replacement
    resampled = np.take_along_axis(x[None].repeat(reps, 0), index, axis=1)  # (reps, runs, tasks)
    if statistic is iqm:  # vectorised: sort each replicate's entries, average the middle
        flat = np.sort(resampled.reshape(reps, -1), axis=1)
        cut = int(0.25 * flat.shape[1])
        values = flat[:, cut : flat.shape[1] - cut].mean(axis=1)
    else:
        values = np.array([statistic(r) for r in resampled])
    low, high = np.percentile(values, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return Interval(float(statistic(x)), float(low), float(high))
