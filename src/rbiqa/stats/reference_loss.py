"""The judge-independent check: each arm's teacher-forced loss of the reference answers.

For every arm and every set in `generate.reference_loss_sets`, the mean negative log-likelihood per
answer token (nats) of the reference answer under the arm's own prompt (rbiqa.generate.reference_loss),
with a cluster-bootstrap CI, and its paired difference from the base arm on the same items (negative =
the arm finds the reference more likely). If fine-tuning taught the trained facts, the loss falls on
test_trained; if the facts transfer to new wordings, it falls on test_paraphrase too.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from rbiqa import paths as P
from rbiqa.io import InputError, iter_jsonl
from rbiqa.stats.intervals import cluster_bootstrap_ci
from rbiqa.stats.study import Study


def load_reference_nll(arms: Iterable[str], eval_sets: Iterable[str], root: Path = Path(".")) -> pd.DataFrame:
    """Long table (arm, eval_set, item_id, source_id, nll) of the items that have a reference loss."""
    rows = []
    for e in eval_sets:
        for arm in arms:
            path = root / P.generations(arm, e)
            if not path.exists():
                raise InputError(f"{path} does not exist: run the generate stage for {arm}")
            for r in iter_jsonl(path):
                if r.get("reference_nll") is not None:
                    rows.append(
                        {"arm": arm, "eval_set": e, "item_id": r["item_id"], "source_id": r["source_id"],
                         "nll": float(r["reference_nll"])}
                    )  # fmt: skip
    return pd.DataFrame(rows, columns=["arm", "eval_set", "item_id", "source_id", "nll"])


def compute_reference_loss(study: Study, nll: pd.DataFrame, eval_sets: Iterable[str]) -> dict:
    s = study.settings
    sets = [e for e in eval_sets if e in study.eval_sets]
    if nll.empty or not sets:
        return {
            "available": False,
            "reason": "no reference losses were computed",
            "records": [],
            "paired": [],
        }
    records, paired = [], []
    by = {k: g for k, g in nll.groupby(["arm", "eval_set"], sort=False)}
    for e in sets:
        base = by.get((s.base_arm, e))
        for arm in study.arms:
            cell = by.get((arm, e))
            if cell is None or cell.empty:
                records.append({"arm": arm, "eval_set": e, "n": 0, "mean_nll": None})
                continue
            boot = cluster_bootstrap_ci(
                cell["nll"].to_numpy(), cell["source_id"].to_numpy(), s.n_resamples,
                study.rng(f"nll/{arm}/{e}"), s.ci_level, s.chunk,
            )  # fmt: skip
            records.append(
                {
                    "arm": arm,
                    "eval_set": e,
                    "n": len(cell),
                    "mean_nll": boot.estimate,
                    "lo": boot.lo,
                    "hi": boot.hi,
                }
            )
            if base is None or arm == s.base_arm:
                continue
            both = cell.merge(base, on=["item_id", "source_id"], suffixes=("", "_ref"))
            if both.empty:
                continue
            d = both["nll"].to_numpy() - both["nll_ref"].to_numpy()
            diff = cluster_bootstrap_ci(
                d, both["source_id"].to_numpy(), s.n_resamples, study.rng(f"nll-diff/{arm}/{e}"),
                s.ci_level, s.chunk,
            )  # fmt: skip
            paired.append(
                {"arm": arm, "ref": s.base_arm, "eval_set": e, "n_pairs": int(d.size), "diff": float(np.mean(d)),
                 "diff_lo": diff.lo, "diff_hi": diff.hi,
                 "direction": "lower" if diff.hi < 0 else "higher" if diff.lo > 0 else "inconclusive"}
            )  # fmt: skip
    return {
        "available": True,
        "eval_sets": sets,
        "records": records,
        "paired": paired,
        "definition": "mean NLL per reference-answer token (nats) under the arm's prompt; diff = arm - ref",
    }
