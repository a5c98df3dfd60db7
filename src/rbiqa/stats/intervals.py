"""Confidence intervals for judge accuracy.

Two intervals are reported side by side. Wilson is exact enough for a binomial proportion and behaves at
0 and 1, but it assumes independent items. An eval set can hold several phrasings of one source
question, which are not independent, so the bootstrap resamples whole source clusters: where every
cluster is a single item it reduces to the ordinary bootstrap.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint


class EmptySampleError(ValueError):
    """Nothing left to estimate from (e.g. every judgment missing); callers record a flag instead."""


def derived_rng(seed: int, key: str) -> np.random.Generator:
    """An RNG per estimate, keyed by name, so adding an arm never changes another estimate's draws."""
    digest = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "little")
    return np.random.default_rng([int(seed), digest])


def wilson_ci(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    if n <= 0:
        raise EmptySampleError("Wilson interval of an empty sample: no judged items")
    if not 0 <= successes <= n:
        raise ValueError(f"successes={successes} outside [0, n={n}]")
    lo, hi = proportion_confint(successes, n, alpha=1 - level, method="wilson")
    return float(lo), float(hi)


def newcombe_diff_ci(
    successes1: int, n1: int, successes2: int, n2: int, level: float = 0.95
) -> tuple[float, float]:
    """CI of p1 - p2 for two independent samples (different items, e.g. two eval sets)."""
    if n1 <= 0 or n2 <= 0:
        raise EmptySampleError("difference of proportions with an empty sample")
    lo, hi = confint_proportions_2indep(
        successes1, n1, successes2, n2, method="newcomb", compare="diff", alpha=1 - level
    )
    return float(lo), float(hi)


@dataclass(frozen=True)
class BootstrapResult:
    estimate: float  # the plug-in estimate on the observed data
    lo: float
    hi: float
    boot_mean: float  # mean over replicates; close to `estimate` unless the estimator is biased
    boot_se: float
    n_clusters: int
    n_resamples: int


def _cluster_sums(values: np.ndarray, clusters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    _, inverse = np.unique(clusters, return_inverse=True)
    sums = np.bincount(inverse, weights=values)
    counts = np.bincount(inverse).astype(float)
    return sums, counts


def cluster_bootstrap_replicates(
    values: np.ndarray,
    clusters: np.ndarray,
    n_resamples: int,
    rng: np.random.Generator,
    chunk: int = 1000,
) -> np.ndarray:
    """Replicates of the item-level mean, resampling whole clusters with replacement.

    The ratio (sum of resampled cluster totals / number of resampled items) is the mean over items, so
    a cluster of three phrasings weighs three items, as it does in the point estimate.
    Chunked so memory stays at chunk x n_clusters integers whatever B is.
    """
    values = np.asarray(values, dtype=float)
    clusters = np.asarray(clusters)
    if values.size == 0:
        raise EmptySampleError("bootstrap of an empty sample: no judged items")
    if values.shape != clusters.shape:
        raise ValueError("values and clusters must have the same length")
    sums, counts = _cluster_sums(values, clusters)
    n_clusters = sums.size
    out = np.empty(n_resamples)
    for start in range(0, n_resamples, chunk):
        stop = min(start + chunk, n_resamples)
        idx = rng.integers(0, n_clusters, size=(stop - start, n_clusters), dtype=np.int32)
        out[start:stop] = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
    return out


def cluster_bootstrap_ci(
    values: np.ndarray,
    clusters: np.ndarray,
    n_resamples: int,
    rng: np.random.Generator,
    level: float = 0.95,
    chunk: int = 1000,
) -> BootstrapResult:
    """Percentile CI of the item mean under the cluster bootstrap (accuracy, or a paired difference)."""
    values = np.asarray(values, dtype=float)
    reps = cluster_bootstrap_replicates(values, clusters, n_resamples, rng, chunk)
    tail = (1 - level) / 2
    lo, hi = np.quantile(reps, [tail, 1 - tail])
    return BootstrapResult(
        estimate=float(values.mean()),
        lo=float(lo),
        hi=float(hi),
        boot_mean=float(reps.mean()),
        boot_se=float(reps.std(ddof=1)) if reps.size > 1 else 0.0,
        n_clusters=int(np.unique(np.asarray(clusters)).size),
        n_resamples=int(n_resamples),
    )


def independent_diff_bootstrap_ci(
    values1: np.ndarray,
    clusters1: np.ndarray,
    values2: np.ndarray,
    clusters2: np.ndarray,
    n_resamples: int,
    rng: np.random.Generator,
    level: float = 0.95,
    chunk: int = 1000,
) -> BootstrapResult:
    """Mean1 - mean2 for two independent samples, each resampled by its own clusters."""
    r1 = cluster_bootstrap_replicates(values1, clusters1, n_resamples, rng, chunk)
    r2 = cluster_bootstrap_replicates(values2, clusters2, n_resamples, rng, chunk)
    reps = r1 - r2
    tail = (1 - level) / 2
    lo, hi = np.quantile(reps, [tail, 1 - tail])
    return BootstrapResult(
        estimate=float(np.mean(values1) - np.mean(values2)),
        lo=float(lo),
        hi=float(hi),
        boot_mean=float(reps.mean()),
        boot_se=float(reps.std(ddof=1)),
        n_clusters=int(np.unique(clusters1).size + np.unique(clusters2).size),
        n_resamples=int(n_resamples),
    )
