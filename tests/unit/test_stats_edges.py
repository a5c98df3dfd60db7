"""Edge cases of the statistics: degenerate scores, tiny samples, missing and empty cells."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rbiqa.io import InputError
from rbiqa.stats.intervals import (
    EmptySampleError,
    cluster_bootstrap_ci,
    derived_rng,
    newcombe_diff_ci,
    wilson_ci,
)
from rbiqa.stats.metrics import NO_JUDGED, StatsSettings, compute_all
from rbiqa.stats.paired import PairedTable, mcnemar_exact_p, pair_items, paired_comparison, phi_coefficient
from rbiqa.stats.seeds import seed_spread


def rng():
    return derived_rng(7, "edge")


def test_all_zeros_and_all_ones():
    lo, hi = wilson_ci(0, 20)
    assert lo == pytest.approx(0.0, abs=1e-12) and 0.1 < hi < 0.2
    lo, hi = wilson_ci(20, 20)
    assert 0.8 < lo < 0.9 and hi == pytest.approx(1.0)
    b = cluster_bootstrap_ci(np.zeros(20), np.arange(20), 500, rng())
    assert (b.estimate, b.lo, b.hi) == (0.0, 0.0, 0.0)
    b = cluster_bootstrap_ci(np.ones(20), np.arange(20), 500, rng())
    assert (b.lo, b.hi) == (1.0, 1.0)


def test_n_equals_one():
    lo, hi = wilson_ci(1, 1)
    assert 0 < lo < 0.5 and hi == pytest.approx(1.0)
    b = cluster_bootstrap_ci(np.array([1.0]), np.array(["s"]), 100, rng())
    assert b.lo == b.hi == 1.0 and b.n_clusters == 1
    r = paired_comparison(np.array([1]), np.array([0]), np.array(["s"]), 100, rng())
    assert r.diff == 1.0 and r.mcnemar_p == 1.0 and r.phi is None


def test_empty_sample_raises_clear_error():
    with pytest.raises(EmptySampleError, match="no judged items"):
        wilson_ci(0, 0)
    with pytest.raises(EmptySampleError, match="empty"):
        cluster_bootstrap_ci(np.array([]), np.array([]), 10, rng())
    with pytest.raises(EmptySampleError):
        paired_comparison(np.array([]), np.array([]), np.array([]), 10, rng())
    with pytest.raises(EmptySampleError):
        newcombe_diff_ci(1, 2, 0, 0)


def test_bad_counts_rejected():
    with pytest.raises(ValueError, match="outside"):
        wilson_ci(5, 3)


def test_cluster_bootstrap_is_wider_when_phrasings_are_correlated():
    # 40 sources x 5 phrasings, all phrasings of a source scored alike: the effective n is 40, not 200
    scores = np.repeat(np.tile([0.0, 1.0], 20), 5)
    clusters = np.repeat(np.arange(40), 5)
    clustered = cluster_bootstrap_ci(scores, clusters, 4000, rng())
    naive = cluster_bootstrap_ci(scores, np.arange(200), 4000, rng())
    assert (clustered.hi - clustered.lo) > 1.8 * (naive.hi - naive.lo)
    assert clustered.n_clusters == 40


def test_mcnemar_no_discordant_pairs_is_one_and_phi_undefined_for_constant_arm():
    t = PairedTable(n00=5, n01=0, n10=0, n11=5)
    assert mcnemar_exact_p(t) == 1.0
    assert phi_coefficient(t) == pytest.approx(1.0)
    assert phi_coefficient(PairedTable(n00=0, n01=0, n10=3, n11=4)) is None  # arm... ref always 1


def _frame(arm, scores, status=None, sources=None):
    n = len(scores)
    return pd.DataFrame(
        {
            "arm": arm,
            "eval_set": "test_unseen",
            "item_id": [f"i{i}" for i in range(n)],
            "source_id": sources or [f"s{i}" for i in range(n)],
            "score": [np.nan if s is None else float(s) for s in scores],
            "status": status or ["ok" if s is not None else "missing" for s in scores],
            "judge_model": "m",
            "regulation_area": "KYC",
            "category": "fact-based",
            "difficulty": 3,
        }
    )


def test_pair_items_excludes_missing_in_either_arm_and_counts_them():
    a = _frame("ft_k3", [1, None, 1, 0])
    b = _frame("base", [0, 0, None, 0])
    pairs, counts = pair_items(a, b)
    assert list(pairs["item_id"]) == ["i0", "i3"]
    assert counts == {
        "n_pairs": 2,
        "n_missing_arm": 1,
        "n_missing_ref": 1,
        "n_missing_either": 2,
        "n_only_in_one_arm": 0,
    }


def test_pair_items_rejects_source_id_mismatch():
    a = _frame("ft_k3", [1, 0], sources=["s0", "s1"])
    b = _frame("base", [1, 0], sources=["s0", "other"])
    with pytest.raises(InputError, match="different source_id"):
        pair_items(a, b)


def test_missing_judgments_never_count_as_zero():
    long = pd.concat([_frame("base", [1, 0, 1, None, None]), _frame("ft_k3", [1, 1, 1, 1, None])])
    m = compute_all(
        long, StatsSettings(n_resamples=200, extra_pairs=()), {"available": False}, finetuned=["ft_k3"]
    )
    acc = {r["arm"]: r for r in m["accuracy"]["records"]}
    assert acc["base"]["accuracy"] == pytest.approx(2 / 3)  # 2 of 3 judged, not 2 of 5
    assert acc["base"]["n_missing"] == 2 and acc["base"]["n_judged"] == 3
    assert acc["ft_k3"]["accuracy"] == 1.0 and acc["ft_k3"]["n_missing"] == 1


def test_empty_after_exclusion_is_flagged_not_crashing():
    long = pd.concat([_frame("base", [None, None]), _frame("ft_k3", [1, 0])])
    m = compute_all(
        long, StatsSettings(n_resamples=200, extra_pairs=()), {"available": False}, finetuned=["ft_k3"]
    )
    acc = {r["arm"]: r for r in m["accuracy"]["records"]}
    assert acc["base"]["accuracy"] is None and acc["base"]["flag"] == NO_JUDGED
    assert acc["ft_k3"]["accuracy"] == 0.5 and acc["ft_k3"]["flag"] is None
    p = m["paired"]["records"][0]
    assert p["flag"] == NO_JUDGED and p["diff"] is None and p["n_missing_ref"] == 2
    assert m["power"]["records"] == []  # no base rate, so no power statement


def test_absent_items_counted_separately():
    long = _frame("base", [1, 0, None], status=["ok", "ok", "absent"])
    m = compute_all(long, StatsSettings(n_resamples=100), {"available": False})
    r = m["accuracy"]["records"][0]
    assert (r["n_judged"], r["n_missing"], r["n_absent"], r["accuracy"]) == (2, 0, 1, 0.5)


def test_seed_spread():
    s = seed_spread({"a": 0.5, "b": 0.6, "c": 0.7}, {"a": 100, "b": 100, "c": 100})
    assert s["sd_between_seeds"] == pytest.approx(0.1)
    assert s["range"] == pytest.approx(0.2)
    expected_se = np.mean([np.sqrt(p * (1 - p) / 100) for p in (0.5, 0.6, 0.7)])
    assert s["mean_binomial_se"] == pytest.approx(expected_se)


def _manip(ft_scores, base_scores, nll_ft=None, nll_base=None):
    long = pd.concat([_frame("base", base_scores), _frame("ft_k3", ft_scores)])
    long["eval_set"] = "test_trained"
    nll = None
    if nll_ft is not None:
        rows = [{"arm": a, "eval_set": "test_trained", "item_id": f"i{i}", "source_id": f"s{i}", "nll": v}
                for a, vals in (("ft_k3", nll_ft), ("base", nll_base)) for i, v in enumerate(vals)]  # fmt: skip
        nll = pd.DataFrame(rows)
    settings = StatsSettings(n_resamples=500, extra_pairs=(), references=("base",))
    return compute_all(
        long, settings, {"available": False}, ["base", "ft_k3"], ["test_trained"], ["ft_k3"], {}, nll,
        ["test_trained"] if nll is not None else [],
    )  # fmt: skip


def test_manipulation_check_passes_only_when_the_trained_facts_were_learned():
    learned = _manip([1] * 18 + [0] * 2, [0] * 19 + [1], nll_ft=[0.2] * 20, nll_base=[2.5] * 20)
    mc = learned["summary"]["manipulation_check"]
    assert mc["available"] and mc["passed"] and mc["diff_lo"] > 0
    assert mc["loss_diff"] == pytest.approx(-2.3) and mc["loss_diff_hi"] < 0
    rl = {(r["arm"], r["eval_set"]): r for r in learned["reference_loss"]["records"]}
    assert rl[("ft_k3", "test_trained")]["mean_nll"] == pytest.approx(0.2)
    # negative control: the same scores for both arms cannot pass
    same = _manip([1, 0] * 10, [1, 0] * 10)
    mc = same["summary"]["manipulation_check"]
    assert mc["available"] and not mc["passed"] and mc["loss_diff"] is None
    assert same["reference_loss"]["available"] is False


def test_over_abstention_is_the_abstained_rate_paired_against_the_main_arm():
    """ft_k3_neg's cost: abstaining on answerable questions, against the main arm, item by item. A
    missing abstention flag (no answer) is excluded, never counted as 'answered'."""
    n = 40
    main = _frame("ft_k3", [1] * n).assign(abstained=[1.0] * 2 + [0.0] * (n - 2))
    neg = _frame("ft_k3_neg", [1] * n).assign(abstained=[1.0] * 14 + [0.0] * (n - 15) + [np.nan])
    m = compute_all(
        pd.concat([main, neg]),
        StatsSettings(n_resamples=500, references=(), extra_pairs=(("ft_k3_neg", "ft_k3"),)),
        {"available": False},
        finetuned=["ft_k3", "ft_k3_neg"],
    )
    oa = m["over_abstention"]
    assert oa["available"] and oa["eval_sets"] == ["test_unseen"] and oa["main_arm"] == "ft_k3"
    rate = {r["arm"]: r for r in oa["records"]}
    assert rate["ft_k3"]["rate"] == pytest.approx(2 / 40) and rate["ft_k3"]["n_abstained"] == 2
    assert rate["ft_k3_neg"]["rate"] == pytest.approx(14 / 39) and rate["ft_k3_neg"]["n_judged"] == 39
    [p] = oa["paired"]
    assert (p["arm"], p["ref"], p["n_pairs"]) == ("ft_k3_neg", "ft_k3", 39)
    assert p["diff"] == pytest.approx(14 / 39 - 2 / 39) and p["direction"] == "higher"
