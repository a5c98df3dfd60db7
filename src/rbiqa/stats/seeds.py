"""Between-seed variance of a fine-tuned arm, set beside the between-item (binomial) standard error.

A single training run hides how much the result would move with another seed; if the seed spread is
as large as the CI half-width, the arm differences of one seed are not the whole story. Replicates are
declared in their arm files (`arm.replicate_of`, read through rbiqa.study).
"""

from __future__ import annotations

import numpy as np


def seed_spread(accuracies: dict[str, float], n_judged: dict[str, int]) -> dict:
    """Mean, SD (ddof=1) and range over replicates, and the mean within-run binomial SE."""
    arms = list(accuracies)
    acc = np.array([accuracies[a] for a in arms], dtype=float)
    n = np.array([n_judged[a] for a in arms], dtype=float)
    binom_se = np.sqrt(acc * (1 - acc) / n)
    sd = float(acc.std(ddof=1)) if acc.size > 1 else None
    mean_se = float(binom_se.mean())
    return {
        "replicates": arms,
        "accuracies": [float(x) for x in acc],
        "mean": float(acc.mean()),
        "sd_between_seeds": sd,
        "range": float(acc.max() - acc.min()),
        "mean_binomial_se": mean_se,
        "sd_over_se": (sd / mean_se) if sd is not None and mean_se > 0 else None,
    }
