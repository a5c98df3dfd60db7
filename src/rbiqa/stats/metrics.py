"""Assemble every statistic the paper reports from the long results table.

Each section is a JSON-able dict of records, written to results/metrics/<section>.json. Missing and
absent judgments are counted per arm and eval set and excluded from every denominator. Where nothing is
left after exclusion the estimate is null with `flag: "no_judged_items"` (documented, not an error), so
one empty arm cannot block the report of the others.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from rbiqa.stats.categories import category_accuracy, category_tests
from rbiqa.stats.corrected import CorrectionInput, compute_corrected
from rbiqa.stats.intervals import EmptySampleError, cluster_bootstrap_ci, wilson_ci
from rbiqa.stats.paired import pair_items, paired_comparison
from rbiqa.stats.power import paired_mdd, unpaired_mdd
from rbiqa.stats.reference_loss import compute_reference_loss
from rbiqa.stats.secondary import (
    compute_forgetting,
    compute_gap,
    compute_hallucination,
    compute_over_abstention,
    compute_seeds,
)
from rbiqa.stats.study import NO_JUDGED, StatsSettings, Study

__all__ = ["NO_JUDGED", "StatsSettings", "Study", "compute_all"]


def _counts(cell: pd.DataFrame) -> dict:
    return {
        "n_items": int(len(cell)),
        "n_judged": int(cell["score"].notna().sum()),
        "n_missing": int((cell["status"] == "missing").sum()),
        "n_absent": int((cell["status"] == "absent").sum()),
    }


def accuracy_record(study: Study, arm: str, eval_set: str) -> dict:
    s = study.settings
    cell = study.cell(arm, eval_set)
    rec = {"arm": arm, "eval_set": eval_set, **_counts(cell)}
    judged = cell[cell["score"].notna()]
    try:
        k = int(judged["score"].sum())
        lo, hi = wilson_ci(k, len(judged), s.ci_level)
        boot = cluster_bootstrap_ci(
            judged["score"].to_numpy(),
            judged["source_id"].to_numpy(),
            s.n_resamples,
            study.rng(f"acc/{arm}/{eval_set}"),
            s.ci_level,
            s.chunk,
        )
    except EmptySampleError:
        return rec | {
            "n_correct": 0,
            "accuracy": None,
            "wilson_lo": None,
            "wilson_hi": None,
            "boot_lo": None,
            "boot_hi": None,
            "n_clusters": 0,
            "flag": NO_JUDGED,
        }
    return rec | {
        "n_correct": k,
        "accuracy": k / len(judged),
        "wilson_lo": lo,
        "wilson_hi": hi,
        "boot_lo": boot.lo,
        "boot_hi": boot.hi,
        "n_clusters": boot.n_clusters,
        "flag": None,
    }


def paired_record(study: Study, arm: str, ref: str, eval_set: str) -> dict:
    s = study.settings
    pairs, counts = pair_items(study.cell(arm, eval_set), study.cell(ref, eval_set))
    rec = {"arm": arm, "ref": ref, "eval_set": eval_set, **counts}
    try:
        res = paired_comparison(
            pairs["y_arm"].to_numpy(),
            pairs["y_ref"].to_numpy(),
            pairs["source_id"].to_numpy(),
            s.n_resamples,
            study.rng(f"paired/{arm}/{ref}/{eval_set}"),
            s.ci_level,
            s.chunk,
        )
    except EmptySampleError:
        return rec | {"diff": None, "diff_lo": None, "diff_hi": None, "direction": None, "flag": NO_JUDGED}
    out = rec | res.to_dict() | {"flag": None}
    out["discordance"] = (res.n01 + res.n10) / res.n_pairs
    return out


def comparison_pairs(study: Study) -> list[tuple[str, str]]:
    """Every ft arm vs every reference, each prompting baseline vs base, then the configured extras."""
    base = study.settings.base_arm
    pairs = [(a, r) for a in study.ft_arms for r in study.references]
    pairs += [(r, base) for r in study.references if r != base and base in study.arms]
    for a, r in study.settings.extra_pairs:
        if a in study.arms and r in study.arms and (a, r) not in pairs:
            pairs.append((a, r))
    return pairs


def compute_accuracy(study: Study) -> dict:
    return {"records": [accuracy_record(study, a, e) for a in study.arms for e in study.eval_sets]}


def compute_paired(study: Study) -> dict:
    recs = [paired_record(study, a, r, e) for a, r in comparison_pairs(study) for e in study.eval_sets]
    return {"records": recs, "orientation": "diff = acc(arm) - acc(ref); n01 = arm right, ref wrong"}


def compute_per_category(study: Study) -> dict:
    s = study.settings
    acc_rows, test_rows = [], []
    sets = [e for e in s.category_eval_sets if e in study.eval_sets]
    for eval_set in sets:
        for arm in study.arms:
            judged = study.cell(arm, eval_set)
            judged = judged[judged["score"].notna()]
            for g in s.category_groupings:
                for row in category_accuracy(judged, g, s.category_min_n, s.ci_level):
                    acc_rows.append({"arm": arm, "eval_set": eval_set} | row)
        if s.base_arm not in study.arms:
            continue
        meta = study.cell(s.base_arm, eval_set)[["item_id", *s.category_groupings]]
        for arm in study.ft_arms:
            pairs, _ = pair_items(study.cell(arm, eval_set), study.cell(s.base_arm, eval_set))
            pairs = pairs.merge(meta, on="item_id", how="left")
            for g in s.category_groupings:
                for row in category_tests(pairs, g, s.category_min_n, s.alpha, s.ci_level):
                    test_rows.append({"arm": arm, "ref": s.base_arm, "eval_set": eval_set} | row)
    return {
        "min_n": s.category_min_n,
        "accuracy": acc_rows,
        "tests": test_rows,
        "note": "levels with n < min_n are flagged small_n: not ranked, not tested; Holm within "
        "(arm, eval_set, grouping)",
    }


def compute_power(study: Study, accuracy: dict, paired: dict) -> dict:
    s = study.settings
    acc = {(r["arm"], r["eval_set"]): r for r in accuracy["records"]}
    recs = []
    for e in study.eval_sets:
        base = acc.get((s.base_arm, e))
        if base is None or base["accuracy"] is None:
            continue
        un = unpaired_mdd(base["n_judged"], base["accuracy"], s.alpha, s.power)
        rec = {"eval_set": e, "ref": s.base_arm, "unpaired": un, "paired": []}
        for p in paired["records"]:
            if p["eval_set"] == e and p["ref"] == s.base_arm and p.get("flag") is None:
                rec["paired"].append(
                    {"arm": p["arm"]} | paired_mdd(p["n_pairs"], p["discordance"], s.alpha, s.power)
                )
        recs.append(rec)
    return {"alpha": s.alpha, "power": s.power, "records": recs}


def manipulation_check(study: Study, paired: dict, ref_loss: dict) -> dict:
    """Did the main fine-tuned arm learn its training data? Its accuracy on the trained questions asked
    verbatim against the base model's (paired): passed when the CI of the difference is above zero. The
    judge-independent loss difference on the same items is set beside it."""
    s = study.settings
    e, main = s.manipulation_eval_set, study.main_arm
    if main is None or e not in study.eval_sets or s.base_arm not in study.arms:
        return {"available": False, "reason": f"needs the main arm, {s.base_arm} and {e}"}
    rec = next(
        (p for p in paired["records"] if (p["arm"], p["ref"], p["eval_set"]) == (main, s.base_arm, e)), None
    )
    if rec is None or rec.get("diff") is None:
        return {"available": False, "reason": f"no paired judgments of {main} and {s.base_arm} on {e}"}
    loss = next(
        (
            p
            for p in ref_loss.get("paired", [])
            if (p["arm"], p["ref"], p["eval_set"]) == (main, s.base_arm, e)
        ),
        None,
    )
    return {
        "available": True,
        "eval_set": e,
        "arm": main,
        "ref": s.base_arm,
        "acc_arm": rec["acc_arm"],
        "acc_ref": rec["acc_ref"],
        "diff": rec["diff"],
        "diff_lo": rec["diff_lo"],
        "diff_hi": rec["diff_hi"],
        "n_pairs": rec["n_pairs"],
        "passed": rec["diff_lo"] > 0,
        "loss_diff": loss["diff"] if loss else None,
        "loss_diff_lo": loss["diff_lo"] if loss else None,
        "loss_diff_hi": loss["diff_hi"] if loss else None,
    }


def compute_summary(study: Study, accuracy: dict, paired: dict, agreement: dict, ref_loss: dict) -> dict:
    s = study.settings
    main = study.main_arm
    counts = [
        {k: r[k] for k in ("arm", "eval_set", "n_items", "n_judged", "n_missing", "n_absent")}
        for r in accuracy["records"]
    ]
    headline = next(
        (
            p
            for p in paired["records"]
            if p["arm"] == main and p["ref"] == s.base_arm and p["eval_set"] == s.headline_eval_set
        ),
        None,
    )
    return {
        "arms": study.arms,
        "ft_arms": study.ft_arms,
        "eval_sets": study.eval_sets,
        "main_arm": main,
        "base_arm": s.base_arm if s.base_arm in study.arms else None,
        "references": study.references,
        "headline_eval_set": s.headline_eval_set,
        "headline": headline,
        "ci_level": s.ci_level,
        "alpha": s.alpha,
        "power": s.power,
        "n_resamples": s.n_resamples,
        "seed": s.seed,
        "counts": counts,
        "total_missing": int(sum(c["n_missing"] for c in counts)),
        "total_absent": int(sum(c["n_absent"] for c in counts)),
        "judge_agreement_available": bool(agreement.get("available")),
        "manipulation_check": manipulation_check(study, paired, ref_loss),
        "judge_models": sorted(str(x) for x in study.results["judge_model"].dropna().unique()),
    }


def compute_all(
    results: pd.DataFrame,
    settings: StatsSettings,
    agreement: dict,
    arms: Sequence[str] | None = None,
    eval_sets: Sequence[str] | None = None,
    finetuned: Sequence[str] = (),
    replicates: Mapping[str, Sequence[str]] | None = None,
    reference_nll: pd.DataFrame | None = None,
    reference_nll_sets: Sequence[str] = (),
    correction: CorrectionInput | None = None,
) -> dict[str, dict]:
    """Every section; `finetuned` names the fine-tuned arms and `replicates` the seed-replicate groups
    (both from rbiqa.study: arm.kind and arm.replicate_of); `reference_nll` is the long table of the
    teacher-forced reference losses (rbiqa.stats.reference_loss) of `reference_nll_sets`; `correction`
    the judge's calibration and each arm's answer kind (rbiqa.stats.corrected; None = no correction)."""
    study = Study(
        results,
        settings,
        list(arms or []),
        list(eval_sets or []),
        list(finetuned),
        {k: list(v) for k, v in (replicates or {}).items()},
    )
    accuracy = compute_accuracy(study)
    paired = compute_paired(study)
    ref_loss = compute_reference_loss(
        study, reference_nll if reference_nll is not None else pd.DataFrame(), reference_nll_sets
    )
    return {
        "accuracy": accuracy,
        "paired": paired,
        "per_category": compute_per_category(study),
        "power": compute_power(study, accuracy, paired),
        "hallucination": compute_hallucination(study, accuracy, paired),
        "over_abstention": compute_over_abstention(study),
        "forgetting": compute_forgetting(study, paired),
        "generalisation_gap": compute_gap(study),
        "seeds": compute_seeds(study, accuracy),
        "judge_agreement": agreement,
        "reference_loss": ref_loss,
        "corrected": compute_corrected(study, comparison_pairs(study), correction),
        "summary": compute_summary(study, accuracy, paired, agreement, ref_loss),
    }
