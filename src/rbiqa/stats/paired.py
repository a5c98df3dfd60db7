"""Paired comparison of two arms on the same eval items.

Both arms answer the same questions, so the item-level difference removes the (large) between-question
variance. Only items judged in both arms are compared: a missing judgment in either arm drops the pair
and is counted, never scored 0.

Table orientation, used everywhere: rows are the reference arm (0, 1), columns the compared arm (0, 1);
`n01` counts items the compared arm got right and the reference got wrong.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from statsmodels.stats.contingency_tables import mcnemar

from rbiqa.io import InputError
from rbiqa.stats.intervals import EmptySampleError, cluster_bootstrap_ci


@dataclass(frozen=True)
class PairedTable:
    n00: int
    n01: int  # compared arm right, reference wrong
    n10: int  # reference right, compared arm wrong
    n11: int

    @property
    def n(self) -> int:
        return self.n00 + self.n01 + self.n10 + self.n11

    @property
    def discordant(self) -> int:
        return self.n01 + self.n10

    def as_array(self) -> np.ndarray:
        return np.array([[self.n00, self.n01], [self.n10, self.n11]])

    @classmethod
    def from_scores(cls, y_arm: np.ndarray, y_ref: np.ndarray) -> PairedTable:
        y_arm = np.asarray(y_arm).astype(int)
        y_ref = np.asarray(y_ref).astype(int)
        return cls(
            n00=int(np.sum((y_ref == 0) & (y_arm == 0))),
            n01=int(np.sum((y_ref == 0) & (y_arm == 1))),
            n10=int(np.sum((y_ref == 1) & (y_arm == 0))),
            n11=int(np.sum((y_ref == 1) & (y_arm == 1))),
        )


def pair_items(arm: pd.DataFrame, ref: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Inner-join two arms' judgments on item_id, keeping items judged (score not missing) in both.

    Frames need columns item_id, source_id, score (NaN = missing). Returns the pairs (item_id,
    source_id, y_arm, y_ref) and the exclusion counts.
    """
    a = arm.set_index("item_id")
    r = ref.set_index("item_id")
    common = a.index.intersection(r.index, sort=False)
    a, r = a.loc[common], r.loc[common]
    clash = a["source_id"].to_numpy() != r["source_id"].to_numpy()
    if clash.any():
        raise InputError(
            f"{int(clash.sum())} item(s) have different source_id in the two arms, e.g. {common[clash][0]!r}: "
            "the judgments come from different eval-set versions; rerun generate/judge"
        )
    ya, yr = a["score"].to_numpy(dtype=float), r["score"].to_numpy(dtype=float)
    judged = ~np.isnan(ya) & ~np.isnan(yr)
    pairs = pd.DataFrame(
        {
            "item_id": common[judged].to_numpy(),
            "source_id": a["source_id"].to_numpy()[judged],
            "y_arm": ya[judged].astype(int),
            "y_ref": yr[judged].astype(int),
        }
    )
    counts = {
        "n_pairs": int(judged.sum()),
        "n_missing_arm": int(np.isnan(ya).sum()),
        "n_missing_ref": int(np.isnan(yr).sum()),
        "n_missing_either": int((~judged).sum()),
        "n_only_in_one_arm": int(len(arm) + len(ref) - 2 * len(common)),
    }
    return pairs, counts


def mcnemar_exact_p(table: PairedTable) -> float:
    """Exact (binomial) McNemar p-value; 1.0 when there are no discordant pairs."""
    return float(mcnemar(table.as_array(), exact=True).pvalue)


def phi_coefficient(table: PairedTable) -> float | None:
    """Per-item correlation of the two arms' 0/1 scores; None where a margin is empty (undefined)."""
    a, b, c, d = table.n00, table.n01, table.n10, table.n11
    denom = float((a + b) * (c + d) * (a + c) * (b + d))
    if denom == 0:
        return None
    return float((a * d - b * c) / np.sqrt(denom))


def direction(lo: float, hi: float) -> str:
    """'higher' / 'lower' when the CI excludes zero, else 'inconclusive'. The report maps it to words."""
    if lo > 0:
        return "higher"
    if hi < 0:
        return "lower"
    return "inconclusive"


@dataclass(frozen=True)
class PairedResult:
    n_pairs: int
    acc_arm: float
    acc_ref: float
    diff: float
    diff_lo: float
    diff_hi: float
    boot_mean: float
    boot_se: float
    se_normal: float  # unclustered normal-approx SE of the mean difference, for comparison
    n_clusters: int
    n00: int
    n01: int
    n10: int
    n11: int
    mcnemar_p: float
    phi: float | None
    direction: str

    def to_dict(self) -> dict:
        return asdict(self)


def paired_comparison(
    y_arm: np.ndarray,
    y_ref: np.ndarray,
    clusters: np.ndarray,
    n_resamples: int,
    rng: np.random.Generator,
    level: float = 0.95,
    chunk: int = 1000,
) -> PairedResult:
    y_arm = np.asarray(y_arm, dtype=float)
    y_ref = np.asarray(y_ref, dtype=float)
    if y_arm.size == 0:
        raise EmptySampleError("paired comparison with no item judged in both arms")
    if y_arm.shape != y_ref.shape:
        raise ValueError("paired scores must have the same length")
    d = y_arm - y_ref
    boot = cluster_bootstrap_ci(d, clusters, n_resamples, rng, level, chunk)
    table = PairedTable.from_scores(y_arm, y_ref)
    se = float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1 else 0.0
    return PairedResult(
        n_pairs=int(d.size),
        acc_arm=float(y_arm.mean()),
        acc_ref=float(y_ref.mean()),
        diff=float(d.mean()),
        diff_lo=boot.lo,
        diff_hi=boot.hi,
        boot_mean=boot.boot_mean,
        boot_se=boot.boot_se,
        se_normal=se,
        n_clusters=boot.n_clusters,
        n00=table.n00,
        n01=table.n01,
        n10=table.n10,
        n11=table.n11,
        mcnemar_p=mcnemar_exact_p(table),
        phi=phi_coefficient(table),
        direction=direction(boot.lo, boot.hi),
    )
