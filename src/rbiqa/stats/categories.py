"""Accuracy by regulation area, category and difficulty, and per-category fine-tuned-vs-base tests.

Small categories get a Wilson interval and a flag but no rank and no test: a rank among n=3 areas is
noise, and putting their p=1 tests into the Holm family would only cost power for the others.

Holm is computed here rather than with statsmodels' multipletests, whose Holm branch calls
gc.collect() on every call: with ~100 families per run in a process holding all judgments that cost
~0.2 s each. tests/unit/test_stats_calibration.py checks this implementation against multipletests.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rbiqa.stats.intervals import wilson_ci
from rbiqa.stats.paired import PairedTable, mcnemar_exact_p


def category_accuracy(judged: pd.DataFrame, grouping: str, min_n: int, level: float) -> list[dict]:
    """Rows for one arm and eval set; `judged` holds only judged items (score 0/1) with metadata."""
    rows = []
    for level_value, g in judged.groupby(grouping, dropna=False, sort=True):
        n = int(len(g))
        k = int(g["score"].sum())
        lo, hi = wilson_ci(k, n, level)
        rows.append(
            {
                "grouping": grouping,
                "level": _label(level_value),
                "n": n,
                "n_correct": k,
                "accuracy": k / n,
                "wilson_lo": lo,
                "wilson_hi": hi,
                "small_n": n < min_n,
            }
        )
    ranked = sorted((r for r in rows if not r["small_n"]), key=lambda r: (-r["accuracy"], r["level"]))
    for rank, r in enumerate(ranked, 1):
        r["rank"] = rank
    for r in rows:
        r.setdefault("rank", None)
    return rows


def category_tests(
    pairs: pd.DataFrame, grouping: str, min_n: int, alpha: float, level: float = 0.95
) -> list[dict]:
    """Exact McNemar per level of `grouping` on paired items, Holm-corrected across the tested levels.

    `pairs` has y_arm, y_ref and the grouping column (items judged in both arms). The Wilson interval of
    the compared arm is on the same paired items, so it matches the n and accuracy printed beside it.
    """
    rows = []
    for level_value, g in pairs.groupby(grouping, dropna=False, sort=True):
        table = PairedTable.from_scores(g["y_arm"].to_numpy(), g["y_ref"].to_numpy())
        tested = table.n >= min_n
        lo, hi = wilson_ci(int(g["y_arm"].sum()), table.n, level)
        rows.append(
            {
                "grouping": grouping,
                "level": _label(level_value),
                "n_pairs": table.n,
                "acc_arm": float(g["y_arm"].mean()),
                "acc_ref": float(g["y_ref"].mean()),
                "arm_wilson_lo": lo,
                "arm_wilson_hi": hi,
                "diff": float((g["y_arm"] - g["y_ref"]).mean()),
                "n01": table.n01,
                "n10": table.n10,
                "tested": tested,
                "mcnemar_p": mcnemar_exact_p(table) if tested else None,
            }
        )
    tested_rows = [r for r in rows if r["tested"]]
    if tested_rows:
        reject, p_holm = holm([r["mcnemar_p"] for r in tested_rows], alpha)
        for r, rej, ph in zip(tested_rows, reject, p_holm, strict=True):
            r["p_holm"] = float(ph)
            r["significant_holm"] = bool(rej)
    for r in rows:
        r.setdefault("p_holm", None)
        r.setdefault("significant_holm", None)
        r["holm_family_size"] = len(tested_rows)
    return rows


def holm(pvalues, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Holm step-down: (reject, adjusted p) in the input order; adjusted p = running max of (m - i) p_(i)."""
    p = np.asarray(pvalues, dtype=float)
    m = p.size
    order = np.argsort(p, kind="stable")
    adjusted_sorted = np.minimum(1.0, np.maximum.accumulate(p[order] * np.arange(m, 0, -1)))
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    return adjusted <= alpha, adjusted


def _label(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "unknown"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
