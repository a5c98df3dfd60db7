"""Secondary outcomes: hallucination on unanswerable questions, forgetting on general probes, the
paraphrase-minus-unseen gap, and between-seed spread. Built from the accuracy and paired sections.
"""

from __future__ import annotations

from rbiqa.stats.intervals import EmptySampleError, independent_diff_bootstrap_ci, newcombe_diff_ci
from rbiqa.stats.paired import direction
from rbiqa.stats.seeds import seed_spread
from rbiqa.stats.study import NO_JUDGED, Study


def _flip(rec: dict) -> dict:
    """Accuracy record -> hallucination record (rate = 1 - abstention accuracy)."""
    if rec["accuracy"] is None:
        return {k: rec[k] for k in ("arm", "eval_set", "n_items", "n_judged", "n_missing", "n_absent")} | {
            "rate": None,
            "wilson_lo": None,
            "wilson_hi": None,
            "boot_lo": None,
            "boot_hi": None,
            "flag": NO_JUDGED,
        }
    return {k: rec[k] for k in ("arm", "eval_set", "n_items", "n_judged", "n_missing", "n_absent")} | {
        "rate": 1 - rec["accuracy"],
        "wilson_lo": 1 - rec["wilson_hi"],
        "wilson_hi": 1 - rec["wilson_lo"],
        "boot_lo": 1 - rec["boot_hi"],
        "boot_hi": 1 - rec["boot_lo"],
        "flag": None,
    }


def compute_hallucination(study: Study, accuracy: dict, paired: dict) -> dict:
    e = study.settings.hallucination_eval_set
    if e not in study.eval_sets:
        return {"available": False, "reason": f"eval set {e} not run", "records": [], "changes": []}
    rates = [_flip(r) for r in accuracy["records"] if r["eval_set"] == e]
    changes = []
    for p in paired["records"]:
        if p["eval_set"] != e or p["ref"] != study.settings.base_arm:
            continue
        if p.get("flag"):
            changes.append({"arm": p["arm"], "ref": p["ref"], "change": None, "flag": p["flag"]})
            continue
        lo, hi = -p["diff_hi"], -p["diff_lo"]
        changes.append(
            {
                "arm": p["arm"],
                "ref": p["ref"],
                "n_pairs": p["n_pairs"],
                "change": -p["diff"],
                "change_lo": lo,
                "change_hi": hi,
                "mcnemar_p": p["mcnemar_p"],
                "direction": direction(lo, hi),
                "flag": None,
            }
        )
    return {
        "available": True,
        "eval_set": e,
        "records": rates,
        "changes": changes,
        "definition": "hallucination rate = 1 - abstention accuracy on questions with no answer",
    }


def compute_over_abstention(study: Study) -> dict:
    """Abstaining where an answer exists (the judgments' `abstained`), per arm and answerable set, and
    each arm against the main arm, paired: the cost side of training a model to say "I don't know".
    Same estimators as accuracy, with the abstention flag in place of the score."""
    from rbiqa.stats.metrics import accuracy_record, comparison_pairs, paired_record

    sets = [e for e in study.settings.over_abstention_eval_sets if e in study.eval_sets]
    if "abstained" not in study.results:
        sets = []
    if not sets:
        return {"available": False, "reason": "no answerable set of stats.over_abstention_eval_sets ran",
                "records": [], "paired": []}  # fmt: skip
    flags = Study(
        study.results.assign(score=study.results["abstained"]),
        study.settings,
        study.arms,
        sets,
        study.finetuned,
        study.replicates,
    )
    rename = {"n_correct": "n_abstained", "accuracy": "rate"}
    records = [
        {rename.get(k, k): v for k, v in accuracy_record(flags, a, e).items()}
        for a in flags.arms
        for e in sets
    ]
    main = study.main_arm
    pairs = [(a, r) for a, r in comparison_pairs(study) if r == main]
    return {
        "available": any(r["rate"] is not None for r in records),
        "eval_sets": sets,
        "main_arm": main,
        "records": records,
        "paired": [paired_record(flags, a, r, e) for a, r in pairs for e in sets],
        "definition": "share of answers to answerable questions that abstain (offline abstention detector); "
        "paired diff = rate(arm) - rate(main arm)",
    }


def compute_forgetting(study: Study, paired: dict) -> dict:
    e = study.settings.forgetting_eval_set
    if e not in study.eval_sets:
        return {"available": False, "reason": f"eval set {e} not run", "records": []}
    recs = [
        {
            k: p.get(k)
            for k in (
                "arm",
                "ref",
                "n_pairs",
                "acc_arm",
                "acc_ref",
                "diff",
                "diff_lo",
                "diff_hi",
                "mcnemar_p",
                "direction",
                "flag",
            )
        }
        for p in paired["records"]
        if p["eval_set"] == e and p["ref"] == study.settings.base_arm
    ]
    return {
        "available": True,
        "eval_set": e,
        "records": recs,
        "definition": "accuracy change on general-knowledge probes, fine-tuned minus base (negative = forgetting)",
    }


def compute_gap(study: Study) -> dict:
    """Paraphrase-minus-unseen accuracy per arm: how much of a gain is recall of trained facts."""
    s = study.settings
    e1, e2 = s.gap_sets
    if e1 not in study.eval_sets or e2 not in study.eval_sets:
        return {"available": False, "reason": f"needs both {e1} and {e2}", "records": []}
    recs = []
    for arm in study.arms:
        c1, c2 = study.cell(arm, e1), study.cell(arm, e2)
        c1, c2 = c1[c1["score"].notna()], c2[c2["score"].notna()]
        rec = {"arm": arm, "set1": e1, "set2": e2, "n1": len(c1), "n2": len(c2)}
        try:
            lo, hi = newcombe_diff_ci(
                int(c1["score"].sum()), len(c1), int(c2["score"].sum()), len(c2), s.ci_level
            )
            boot = independent_diff_bootstrap_ci(
                c1["score"].to_numpy(),
                c1["source_id"].to_numpy(),
                c2["score"].to_numpy(),
                c2["source_id"].to_numpy(),
                s.n_resamples,
                study.rng(f"gap/{arm}"),
                s.ci_level,
                s.chunk,
            )
        except EmptySampleError:
            recs.append(rec | {"gap": None, "flag": NO_JUDGED})
            continue
        recs.append(
            rec
            | {
                "gap": boot.estimate,
                "newcombe_lo": lo,
                "newcombe_hi": hi,
                "boot_lo": boot.lo,
                "boot_hi": boot.hi,
                "direction": direction(boot.lo, boot.hi),
                "flag": None,
            }
        )
    return {"available": True, "records": recs, "definition": f"acc({e1}) - acc({e2}), independent samples"}


def compute_seeds(study: Study, accuracy: dict) -> dict:
    acc = {(r["arm"], r["eval_set"]): r for r in accuracy["records"]}
    groups = {a: reps for a, reps in study.replicates.items() if all(r in study.arms for r in reps)}
    recs = []
    for arm, reps in groups.items():
        for e in study.eval_sets:
            cells = [acc[(a, e)] for a in reps]
            if any(c["accuracy"] is None for c in cells):
                recs.append({"arm": arm, "eval_set": e, "flag": NO_JUDGED})
                continue
            spread = seed_spread(
                {c["arm"]: c["accuracy"] for c in cells}, {c["arm"]: c["n_judged"] for c in cells}
            )
            recs.append({"arm": arm, "eval_set": e, "flag": None} | spread)
    return {"available": bool(groups), "groups": groups, "records": recs}
