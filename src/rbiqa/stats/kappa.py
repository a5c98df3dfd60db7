"""Agreement between two binary raters (a judge and labels, or two judges): kappa with cluster-bootstrap CIs,
accuracy and the confusion matrix. Used by the judge agreement job and the reference judge's fit.

The bootstrap resamples clusters (source questions), not rows: the two answers to one question are
judged on the same reference, so treating them as independent would make the interval too narrow.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, cohen_kappa_score, confusion_matrix
from statsmodels.stats.inter_rater import cohens_kappa


def _kappa(a: np.ndarray, b: np.ndarray) -> float:
    if len(np.unique(np.concatenate([a, b]))) < 2:
        return 1.0 if np.array_equal(a, b) else 0.0
    return float(cohen_kappa_score(a, b))


def bootstrap_kappa_ci(
    a: Sequence[int],
    b: Sequence[int],
    clusters: Sequence | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    a, b = np.asarray(a), np.asarray(b)
    clusters = np.arange(len(a)) if clusters is None else np.asarray(clusters)
    uniq, inv = np.unique(clusters, return_inverse=True)
    members = [np.flatnonzero(inv == k) for k in range(len(uniq))]
    rng = np.random.default_rng(seed)
    stats = np.empty(n_boot)
    for i in range(n_boot):
        idx = np.concatenate([members[k] for k in rng.integers(0, len(uniq), len(uniq))])
        stats[i] = _kappa(a[idx], b[idx])
    lo, hi = np.quantile(stats, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def kappa_summary(
    y_true: Sequence[int],
    y_pred: Sequence[int],
    clusters: Sequence | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict:
    """`y_true` is the reference rater (rows of the confusion matrix), `y_pred` the other."""
    a, b = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    if len(a) != len(b):
        raise ValueError(f"rater lengths differ: {len(a)} vs {len(b)}")
    if len(a) == 0:
        raise ValueError("no paired judgments to compare")
    cm = confusion_matrix(a, b, labels=[0, 1])
    sm = cohens_kappa(cm, return_results=True)
    lo, hi = bootstrap_kappa_ci(a, b, clusters, n_boot=n_boot, seed=seed)
    return {
        "n": int(len(a)),
        "n_clusters": int(len(set(clusters))) if clusters is not None else int(len(a)),
        "kappa": _kappa(a, b),
        "kappa_ci": [lo, hi],
        "kappa_ci_method": f"cluster bootstrap percentile, {n_boot} resamples, seed {seed}",
        "kappa_asymptotic_ci": [float(sm.kappa_low), float(sm.kappa_upp)],
        "accuracy": float(accuracy_score(a, b)),
        "confusion": {"labels": [0, 1], "rows": "reference rater", "cols": "other", "matrix": cm.tolist()},
        "positive_rate_reference": float(a.mean()),
        "positive_rate_other": float(b.mean()),
    }


def rate_gap_ci(
    y_true: Sequence[int],
    y_pred: Sequence[int],
    clusters: Sequence | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Cluster-bootstrap CI of (positive rate of `y_pred`) - (positive rate of `y_true`).

    This gap is what a judge adds to or takes from an arm's accuracy; kappa can be decent while the gap
    is large and of opposite sign for two kinds of answers.
    """
    diff = np.asarray(y_pred, dtype=float) - np.asarray(y_true, dtype=float)
    clusters = np.arange(len(diff)) if clusters is None else np.asarray(clusters)
    _, inv = np.unique(clusters, return_inverse=True)
    sums, sizes = np.bincount(inv, weights=diff), np.bincount(inv).astype(float)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(sums), size=(n_boot, len(sums)))
    stats = sums[draws].sum(axis=1) / sizes[draws].sum(axis=1)
    lo, hi = np.quantile(stats, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def agreement_by_group(
    y_true: Sequence[int],
    y_pred: Sequence[int],
    group: Sequence[str],
    clusters: Sequence | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, dict]:
    """kappa_summary per group (e.g. base vs fine-tuned answers) plus the gap between the two raters'
    positive rates, with cluster-bootstrap CIs: pooled agreement can hide errors that depend on the arm."""
    a, b, g = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int), np.asarray(group)
    c = np.arange(len(a)) if clusters is None else np.asarray(clusters)
    out = {}
    for name in sorted(set(g.tolist())):
        m = g == name
        s = kappa_summary(a[m], b[m], clusters=c[m], n_boot=n_boot, seed=seed)
        s["rate_gap"] = float(b[m].mean() - a[m].mean())
        s["rate_gap_ci"] = list(rate_gap_ci(a[m], b[m], c[m], n_boot=n_boot, seed=seed))
        out[str(name)] = s
    return out
