"""Statistics checked on the reference study's real paired judgments against independent computations.

The calibration CSV pairs base and fine-tuned answers by `row`; `item_id` is the question hash, shared
by the few duplicated questions, so it serves as the bootstrap cluster.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest, norm

from rbiqa.stats.categories import category_accuracy, category_tests
from rbiqa.stats.intervals import cluster_bootstrap_ci, derived_rng, wilson_ci
from rbiqa.stats.metrics import StatsSettings, compute_all
from rbiqa.stats.paired import PairedTable, mcnemar_exact_p, paired_comparison, phi_coefficient

CALIBRATION = Path(__file__).resolve().parents[2].parent / "shared" / "calibration" / "seed_judgments_dev.csv"

pytestmark = pytest.mark.skipif(
    not CALIBRATION.exists(), reason=f"calibration data not present at {CALIBRATION} (shared checkout only)"
)


@pytest.fixture(scope="module")
def calib() -> pd.DataFrame:
    return pd.read_csv(CALIBRATION)


@pytest.fixture(scope="module")
def paired(calib) -> pd.DataFrame:
    base = calib[calib["model"] == "base"].set_index("row")
    ft = calib[calib["model"] == "finetuned"].set_index("row")
    assert set(base.index) == set(ft.index), "every row must have both models"
    ft = ft.loc[base.index]
    return pd.DataFrame(
        {
            "y_ref": base["judge_score"].to_numpy(),
            "y_arm": ft["judge_score"].to_numpy(),
            "cluster": base["item_id"].to_numpy(),
            "regulation_area": base["regulation_area"].to_numpy(),
            "category": base["category"].to_numpy(),
            "difficulty": base["difficulty"].to_numpy(),
        }
    )


def wilson_closed_form(k: int, n: int, z: float) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def test_calibration_accuracy_matches_reference_study_half(paired):
    # the README quotes 7.0% / 57.6% on the full 1,000 questions; this half is close to that
    assert len(paired) == 524
    assert paired["y_ref"].mean() == pytest.approx(38 / 524)
    assert paired["y_arm"].mean() == pytest.approx(298 / 524)
    assert abs(paired["y_ref"].mean() - 0.070) < 0.02
    assert abs(paired["y_arm"].mean() - 0.576) < 0.02


@pytest.mark.parametrize("col", ["y_ref", "y_arm"])
def test_wilson_matches_closed_form(paired, col):
    k, n = int(paired[col].sum()), len(paired)
    lo, hi = wilson_ci(k, n, 0.95)
    elo, ehi = wilson_closed_form(k, n, norm.ppf(0.975))
    assert lo == pytest.approx(elo, abs=1e-12)
    assert hi == pytest.approx(ehi, abs=1e-12)
    assert lo < k / n < hi


def test_mcnemar_matches_binomtest_on_discordant_pairs(paired):
    table = PairedTable.from_scores(paired["y_arm"], paired["y_ref"])
    # counts from an independent crosstab
    ct = pd.crosstab(paired["y_ref"], paired["y_arm"])
    assert (table.n00, table.n01, table.n10, table.n11) == (
        ct.loc[0, 0],
        ct.loc[0, 1],
        ct.loc[1, 0],
        ct.loc[1, 1],
    )
    expected = binomtest(min(table.n01, table.n10), table.discordant, 0.5, alternative="two-sided").pvalue
    assert mcnemar_exact_p(table) == pytest.approx(expected, rel=1e-9)
    assert mcnemar_exact_p(table) < 1e-40  # 267 vs 8 discordant pairs is overwhelming


def test_mcnemar_on_a_modest_subset_matches_binomtest(paired):
    # the full table is extreme; a per-area subset exercises a p-value in the interesting range
    sub = paired[paired["regulation_area"] == "Foreign Exchange Management"]
    t = PairedTable.from_scores(sub["y_arm"], sub["y_ref"])
    expected = binomtest(min(t.n01, t.n10), t.discordant, 0.5).pvalue
    assert mcnemar_exact_p(t) == pytest.approx(expected, rel=1e-9)


def test_phi_matches_pearson_correlation(paired):
    table = PairedTable.from_scores(paired["y_arm"], paired["y_ref"])
    expected = np.corrcoef(paired["y_arm"], paired["y_ref"])[0, 1]
    assert phi_coefficient(table) == pytest.approx(expected, abs=1e-12)


def test_paired_bootstrap_centres_on_difference_with_normal_width(paired):
    res = paired_comparison(
        paired["y_arm"], paired["y_ref"], paired["cluster"], 10000, derived_rng(1234, "calib"), 0.95
    )
    d = paired["y_arm"] - paired["y_ref"]
    assert res.diff == pytest.approx(d.mean())
    assert res.boot_mean == pytest.approx(d.mean(), abs=0.005)
    se = d.std(ddof=1) / math.sqrt(len(d))
    assert res.se_normal == pytest.approx(se)
    # almost every cluster is one item, so the clustered CI is close to the normal paired CI
    width = res.diff_hi - res.diff_lo
    assert width == pytest.approx(2 * norm.ppf(0.975) * se, rel=0.1)
    assert res.diff_lo > 0.4 and res.direction == "higher"
    assert res.n_clusters == paired["cluster"].nunique() == 523


def test_bootstrap_is_seeded_and_key_dependent(paired):
    a = cluster_bootstrap_ci(paired["y_arm"], paired["cluster"], 2000, derived_rng(1, "k"))
    b = cluster_bootstrap_ci(paired["y_arm"], paired["cluster"], 2000, derived_rng(1, "k"))
    c = cluster_bootstrap_ci(paired["y_arm"], paired["cluster"], 2000, derived_rng(1, "other"))
    assert (a.lo, a.hi) == (b.lo, b.hi)
    assert (a.lo, a.hi) != (c.lo, c.hi)


def test_per_category_wilson_and_small_flags(paired):
    judged = paired.rename(columns={"y_arm": "score"})
    rows = category_accuracy(judged, "regulation_area", min_n=10, level=0.95)
    by_level = {r["level"]: r for r in rows}
    fx = paired[paired["regulation_area"] == "Foreign Exchange Management"]
    r = by_level["Foreign Exchange Management"]
    assert r["n"] == len(fx) and r["n_correct"] == int(fx["y_arm"].sum())
    elo, ehi = wilson_closed_form(r["n_correct"], r["n"], norm.ppf(0.975))
    assert (r["wilson_lo"], r["wilson_hi"]) == pytest.approx((elo, ehi))
    assert sum(r["n"] for r in rows) == len(paired)
    small = [r for r in rows if r["small_n"]]
    assert small and all(r["n"] < 10 and r["rank"] is None for r in small)
    ranked = sorted((r for r in rows if not r["small_n"]), key=lambda r: r["rank"])
    assert [r["rank"] for r in ranked] == list(range(1, len(ranked) + 1))
    assert all(a["accuracy"] >= b["accuracy"] for a, b in zip(ranked, ranked[1:], strict=False))


def test_per_category_holm_matches_manual_holm(paired):
    rows = category_tests(paired, "regulation_area", min_n=10, alpha=0.05)
    tested = [r for r in rows if r["tested"]]
    assert tested and all(r["n_pairs"] >= 10 for r in tested)
    assert all(r["p_holm"] is None for r in rows if not r["tested"])
    m = len(tested)
    order = sorted(tested, key=lambda r: r["mcnemar_p"])
    running = 0.0
    for i, r in enumerate(order):
        running = max(running, min(1.0, (m - i) * r["mcnemar_p"]))
        assert r["p_holm"] == pytest.approx(running)
    assert all(r["holm_family_size"] == m for r in rows)


def test_holm_matches_statsmodels_multipletests(paired):
    from statsmodels.stats.multitest import multipletests

    from rbiqa.stats.categories import holm

    rows = category_tests(paired, "regulation_area", min_n=4, alpha=0.05)
    p = [r["mcnemar_p"] for r in rows if r["tested"]]
    assert len(p) > 10 and len(set(p)) > 3
    for alpha in (0.05, 0.5):
        reject, adj = holm(p, alpha)
        sm_reject, sm_adj, _, _ = multipletests(p, alpha=alpha, method="holm")
        assert np.allclose(adj, sm_adj) and (reject == sm_reject).all()


def test_compute_all_on_calibration_long_table(calib):
    long = pd.DataFrame(
        {
            "arm": calib["model"].map({"base": "base", "finetuned": "ft_k3"}),
            "eval_set": "test_unseen",
            "item_id": calib["row"].astype(str),
            "source_id": calib["item_id"],
            "score": calib["judge_score"].astype(float),
            "status": "ok",
            "judge_model": "gemini-2.0-flash",
            "regulation_area": calib["regulation_area"],
            "category": calib["category"],
            "difficulty": calib["difficulty"],
        }
    )
    # knock out three fine-tuned judgments: they must be excluded and counted, not scored 0
    drop = long.index[(long["arm"] == "ft_k3")][:3]
    long.loc[drop, "score"] = np.nan
    long.loc[drop, "status"] = "missing"
    settings = StatsSettings(n_resamples=2000, references=("base",), extra_pairs=())
    m = compute_all(long, settings, {"available": False}, ["base", "ft_k3"], ["test_unseen"], ["ft_k3"])
    acc = {r["arm"]: r for r in m["accuracy"]["records"]}
    ft = calib[calib["model"] == "finetuned"].reset_index(drop=True)
    kept = ft.iloc[3:]
    assert acc["ft_k3"]["n_missing"] == 3 and acc["ft_k3"]["n_judged"] == 521
    assert acc["ft_k3"]["accuracy"] == pytest.approx(kept["judge_score"].mean())
    p = m["paired"]["records"][0]
    assert p["n_pairs"] == 521 and p["n_missing_either"] == 3
    assert m["summary"]["headline"]["direction"] == "higher"
    assert m["summary"]["total_missing"] == 3
