"""Accuracy corrected for judge error (rbiqa.stats.corrected): the estimator, its clipping and degenerate
cases, the bootstrap's coverage, the arm-kind mapping, and the table and macros that reach the paper."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rbiqa.figures import tables
from rbiqa.figures.data import Metrics
from rbiqa.figures.numbers import build_numbers
from rbiqa.io import InputError
from rbiqa.judge.reference.model import DEFAULT_PARAMS
from rbiqa.stats.corrected import (
    Calibration,
    CorrectionInput,
    CorrectionSettings,
    clip_unit,
    compute_corrected,
    conservative_interval,
    correction_input,
    rogan_gladen,
)
from rbiqa.stats.load import load_results
from rbiqa.stats.metrics import StatsSettings, Study, compute_all
from tests.fixtures.sample_results import write_sample_results

KINDS_CFG = {
    "corrected": {
        "answer_kinds": {
            "base": "base",
            "fewshot": "base",
            "rag": "base",
            "finetune": "finetuned",
            "finetune_rag": "pooled",
            "refine": "finetuned",
        }
    }
}


def test_rogan_gladen_inverts_the_judges_expected_accuracy():
    for pi, se, sp in [(0.0, 0.9, 0.8), (0.3, 0.7, 0.95), (0.6, 0.85, 0.62), (1.0, 0.6, 0.99)]:
        raw = se * pi + (1 - sp) * (1 - pi)
        assert rogan_gladen(raw, se, sp) == pytest.approx(pi)
    # a perfect judge leaves accuracy alone; one no better than chance identifies nothing
    assert rogan_gladen(0.42, 1.0, 1.0) == pytest.approx(0.42)
    assert np.isnan(rogan_gladen(0.4, 0.5, 0.5)) and np.isnan(rogan_gladen(0.4, 0.3, 0.6))


def test_rogan_gladen_recovers_the_prevalence_on_simulated_judgments():
    rng = np.random.default_rng(3)
    se, sp = 0.13, 0.988  # as poor a sensitivity as the reference judge's on base answers
    for pi in (0.05, 0.3):
        truth = rng.random(400_000) < pi
        judged = np.where(truth, rng.random(truth.size) < se, rng.random(truth.size) > sp)
        assert judged.mean() < pi  # the raw accuracy is badly biased ...
        assert rogan_gladen(judged.mean(), se, sp) == pytest.approx(pi, abs=0.02)  # ... the correction is not


def test_clip_unit_flags_the_side():
    assert clip_unit(-0.2) == (0.0, "below_0")
    assert clip_unit(1.3) == (1.0, "above_1")
    assert clip_unit(0.4) == (0.4, None)


def test_degenerate_replicates_widen_the_interval_conservatively():
    reps = np.linspace(0.4, 0.6, 1000)
    none = np.zeros(1000, bool)
    lo, hi = conservative_interval(reps, none, 0.95, (0.0, 1.0))
    assert 0.40 < lo < 0.41 and 0.59 < hi < 0.60
    few = none.copy()
    few[5::100] = True  # 1% degenerate: the bounds move out, but stay informative
    lo1, hi1 = conservative_interval(reps, few, 0.95, (0.0, 1.0))
    assert 0 < lo1 < lo and hi < hi1 < 1
    many = none.copy()
    many[5::20] = True  # 5% > the 2.5% tail: the interval is the whole range
    assert conservative_interval(reps, many, 0.95, (0.0, 1.0)) == (0.0, 1.0)


# ------------------------------------------------------------------------------ simulated studies


def simulate_calibration(rng, n_questions, rates, prevalence) -> Calibration:
    """One base and one fine-tuned answer per question (a cluster), judged with the given error rates."""
    rows = []
    for kind in ("base", "finetuned"):
        se, sp = rates[kind]
        truth = rng.random(n_questions) < prevalence[kind]
        pred = np.where(truth, rng.random(n_questions) < se, rng.random(n_questions) > sp)
        rows.append(pd.DataFrame({"y": truth, "p": pred, "c": np.arange(n_questions), "k": kind}))
    df = pd.concat(rows)
    return Calibration.from_arrays(df["y"], df["p"], df["c"], df["k"])


def long_table(scores: dict[str, np.ndarray], sources=None, eval_set="test_unseen", judge_model="m"):
    frames = []
    for arm, s in scores.items():
        n = len(s)
        frames.append(
            pd.DataFrame(
                {
                    "arm": arm,
                    "eval_set": eval_set,
                    "item_id": [f"i{i}" for i in range(n)],
                    "source_id": sources if sources is not None else [f"s{i}" for i in range(n)],
                    "score": np.asarray(s, dtype=float),
                    "status": "ok",
                    "judge_model": judge_model,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def study_of(long, n_resamples=400, seed=1, main="ft", **kw) -> Study:
    settings = StatsSettings(
        seed=seed,
        n_resamples=n_resamples,
        chunk=200,
        main_arm=main,
        base_arm="base",
        references=("base",),
        **kw,
    )
    arms = list(dict.fromkeys(long["arm"]))
    return Study(
        long, settings, arms, list(dict.fromkeys(long["eval_set"])), [a for a in arms if a != "base"]
    )


RATES = {"base": (0.7, 0.9), "finetuned": (0.85, 0.7)}


def test_bootstrap_interval_covers_the_true_accuracy_and_difference():
    """Nominal 95%: over repeated simulated studies (calibration and eval drawn afresh) the intervals of
    the corrected accuracies and of their paired difference contain the truth about that often."""
    rng = np.random.default_rng(11)
    pi = {"base": 0.3, "ft": 0.6}
    hits = {"base": 0, "ft": 0, "diff": 0}
    n_sim = 200
    for sim in range(n_sim):
        cal = simulate_calibration(rng, 300, RATES, {"base": 0.3, "finetuned": 0.5})
        ease = rng.normal(0, 1, 300)  # item difficulty shared by the arms, as in real paired data
        scores = {}
        for arm, kind in (("base", "base"), ("ft", "finetuned")):
            p = 1 / (1 + np.exp(-(np.log(pi[arm] / (1 - pi[arm])) + ease)))
            truth = rng.random(300) < p
            se, sp = RATES[kind]
            scores[arm] = np.where(truth, rng.random(300) < se, rng.random(300) > sp).astype(float)
        # the truth of this simulated population: mean P(correct) over its items
        true = {a: float(np.mean(1 / (1 + np.exp(-(np.log(pi[a] / (1 - pi[a])) + ease))))) for a in pi}
        corr = compute_corrected(
            study_of(long_table(scores), seed=sim),
            [("ft", "base")],
            CorrectionInput(cal, {"base": "base", "ft": "finetuned"}),
        )
        recs = {r["arm"]: r for r in corr["records"]}
        for a in ("base", "ft"):
            hits[a] += recs[a]["corrected_lo"] <= true[a] <= recs[a]["corrected_hi"]
        d = corr["paired"][0]
        hits["diff"] += d["diff_lo"] <= true["ft"] - true["base"] <= d["diff_hi"]
    for k, h in hits.items():
        assert h / n_sim >= 0.88, f"coverage of {k}: {h / n_sim:.2f}"


def test_identical_arms_of_one_kind_differ_by_zero_and_clipping_is_flagged():
    rng = np.random.default_rng(5)
    cal = simulate_calibration(rng, 400, RATES, {"base": 0.3, "finetuned": 0.5})
    s = (rng.random(200) < 0.4).astype(float)
    low = np.zeros(200)  # raw 0 < 1 - Sp: the estimate is negative and clipped to 0
    long = long_table({"base": s, "twin": s.copy(), "ft": low})
    corr = compute_corrected(
        study_of(long, main="twin"),
        [("twin", "base"), ("ft", "base")],
        CorrectionInput(cal, {"base": "base", "twin": "base", "ft": "finetuned"}),
    )
    twin = next(p for p in corr["paired"] if p["arm"] == "twin")
    assert (
        twin["diff"] == 0
        and twin["diff_lo"] == 0
        and twin["diff_hi"] == 0
        and twin["direction"] == "inconclusive"
    )
    ft = next(r for r in corr["records"] if r["arm"] == "ft")
    assert ft["clipped"] == "below_0" and ft["corrected"] == 0.0 and ft["corrected_unclipped"] < 0
    assert 0.0 <= ft["corrected_lo"] <= ft["corrected_hi"] <= 1.0
    assert corr["n_clipped"] >= 1
    assert corr["headline"]["arm"] == "twin" and corr["headline"]["shift"] == pytest.approx(0.0)
    json.dumps(corr, allow_nan=False)  # no NaN reaches the metrics file


def test_a_judge_no_better_than_chance_is_flagged_not_corrected():
    rng = np.random.default_rng(2)
    cal = simulate_calibration(
        rng, 300, {"base": (0.5, 0.4), "finetuned": (0.85, 0.7)}, {"base": 0.4, "finetuned": 0.5}
    )
    long = long_table({"base": rng.random(100) < 0.3, "ft": rng.random(100) < 0.5})
    corr = compute_corrected(
        study_of(long), [("ft", "base")], CorrectionInput(cal, {"base": "base", "ft": "finetuned"})
    )
    recs = {r["arm"]: r for r in corr["records"]}
    assert recs["base"]["flag"] == "judge_uninformative" and recs["base"]["corrected"] is None
    assert recs["ft"]["flag"] is None and recs["ft"]["corrected"] is not None
    assert corr["paired"][0]["flag"] == "judge_uninformative"
    base_rates = next(r for r in corr["error_rates"] if r["answer_kind"] == "base")
    assert base_rates["frac_degenerate"] > 0.5


def test_judgments_of_other_judge_parameters_are_not_corrected():
    cal = Calibration.from_params(DEFAULT_PARAMS)
    long = long_table(
        {"base": [0, 1, 0, 0], "ft": [1, 1, 0, 1]}, judge_model="reference-logreg+x@0123456789ab"
    )
    corr = compute_corrected(
        study_of(long), [("ft", "base")], CorrectionInput(cal, {"base": "base", "ft": "finetuned"})
    )
    assert corr["available"] is False and "rerun the judge" in corr["reason"]
    ok = long.assign(judge_model=f"reference-logreg+x@{cal.sha256[:12]}")
    assert compute_corrected(study_of(ok), [], CorrectionInput(cal, {"base": "base", "ft": "finetuned"}))[
        "available"
    ]


# ------------------------------------------------------------------------------ mapping and calibration


def test_answer_kind_mapping_is_validated():
    ok = CorrectionSettings.from_config(KINDS_CFG)
    assert ok.arm_answer_kinds({"base_rag": "rag", "ft_k3": "finetune"}) == {
        "base_rag": "base",
        "ft_k3": "finetuned",
    }
    bad_key = {"corrected": {"answer_kinds": {**KINDS_CFG["corrected"]["answer_kinds"], "distil": "base"}}}
    with pytest.raises(InputError, match="unknown arm kind"):
        CorrectionSettings.from_config(bad_key)
    bad_value = {
        "corrected": {"answer_kinds": {**KINDS_CFG["corrected"]["answer_kinds"], "rag": "retrieval"}}
    }
    with pytest.raises(InputError, match="unknown answer kind"):
        CorrectionSettings.from_config(bad_value)
    missing = {"corrected": {"answer_kinds": {"base": "base", "finetune": "finetuned"}}}
    with pytest.raises(InputError, match="no answer kind for arm kind"):
        CorrectionSettings.from_config(missing)
    with pytest.raises(InputError, match="stats.corrected"):
        CorrectionSettings.from_config({})


def test_shipped_config_maps_every_arm_kind():
    from rbiqa.config import compose, to_container

    s = CorrectionSettings.from_config(to_container(compose([]).stats))
    assert s.answer_kinds["finetune"] == "finetuned" and s.answer_kinds["base"] == "base"


def test_shipped_calibration_reads_and_has_both_kinds():
    cal = Calibration.from_params(DEFAULT_PARAMS)
    assert set(np.unique(cal.kind)) == {"base", "finetuned"}
    assert len(cal.y_true) == len(cal.y_pred) == len(cal.cluster)
    assert cal.sha256 and len(cal.sha256) == 64


def test_calibration_file_errors_are_clear(tmp_path):
    params = json.loads(DEFAULT_PARAMS.read_text())
    no_model = tmp_path / "a.json"
    oof = {k: v for k, v in params["cv_oof"].items() if k != "model"}
    no_model.write_text(json.dumps({"cv_oof": oof}))
    with pytest.raises(InputError, match="cv_oof needs keys"):
        Calibration.from_params(no_model)
    bad_code = tmp_path / "b.json"
    bad_code.write_text(
        json.dumps({"cv_oof": params["cv_oof"] | {"model": "x" * len(params["cv_oof"]["model"])}})
    )
    with pytest.raises(InputError, match="unknown code"):
        Calibration.from_params(bad_code)
    short = tmp_path / "c.json"
    short.write_text(json.dumps({"cv_oof": params["cv_oof"] | {"y_pred": "01"}}))
    with pytest.raises(InputError, match="same length"):
        Calibration.from_params(short)


def test_a_judge_without_calibration_gives_a_reason_not_an_error():
    kinds = {"base": "base", "ft_k3": "finetune"}
    gem = correction_input(KINDS_CFG, {"backend": "gemini"}, kinds)
    assert not gem.available and "reference standard" in gem.reason
    assert gem.arm_answer_kind == {"base": "base", "ft_k3": "finetuned"}  # the mapping is still checked
    ref = correction_input(KINDS_CFG, {"backend": "reference", "params_path": None}, kinds)
    assert ref.available and ref.calibration.sha256
    with pytest.raises(InputError, match="no answer kind for arm kind"):  # checked whatever the judge
        correction_input({"corrected": {"answer_kinds": {"base": "base"}}}, {"backend": "gemini"}, kinds)
    with pytest.raises(InputError, match="does not map"):
        CorrectionSettings.from_config(KINDS_CFG).arm_answer_kinds({"x": "distil"})


# ------------------------------------------------------------------------------ the report


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("corrected")
    arms = ["base", "base_rag", "ft_k0", "ft_k3"]
    write_sample_results(root, arms, n_sources=40, with_agreement=False)
    sets = ["test_trained", "test_unseen", "unanswerable"]
    with contextlib.chdir(root):
        results = load_results(arms, sets)
    settings = StatsSettings(n_resamples=300)
    kinds = {"base": "base", "base_rag": "rag", "ft_k0": "finetune", "ft_k3": "finetune"}
    out = {}
    for backend in ("reference", "gemini"):
        corr = correction_input(
            {
                "corrected": {
                    **KINDS_CFG["corrected"],
                    "skip_eval_sets": {"unanswerable": "abstention detector"},
                    "calibration_answers": "Qwen2.5-3B-Instruct",
                    "calibration_labels": "Gemini 2.0 Flash",
                }
            },
            {"backend": backend},
            kinds,
            applied_to_model="SmolLM2",
        )
        out[backend] = Metrics(
            compute_all(
                results, settings, {"available": False}, arms, sets, ["ft_k0", "ft_k3"], {}, correction=corr
            )
        )
    return out


def report_cfg() -> dict:
    from rbiqa.config import compose, to_container

    return to_container(compose([]).report)


def test_corrected_table_and_macros(sample):
    m = sample["reference"]
    c = m["corrected"]
    assert c["available"] and {r["eval_set"] for r in c["records"]} == {"test_trained", "test_unseen"}
    assert set(c["skipped_eval_sets"]) == {"unanswerable"}
    tex = tables.corrected(m, 1)
    assert r"Corrected (\%)" in tex and r"$\Delta$ corrected (pp)" in tex and "tab:corrected" in tex
    body = tex[tex.index(r"\endfoot") :]
    assert body.count(r"\\") >= len(c["records"])  # a row per arm and corrected set
    assert "unanswerable" in tex and "SmolLM2" in tex  # skipped set and transfer assumption stated
    if c["n_clipped"]:
        assert tables.CLIP_MARK in tex
    errs = tables.judge_errors(m, 1)
    assert "tab:judgeerrors" in errs and "finetuned" in errs
    book = build_numbers(m, report_cfg())
    assert book.flags["HasCorrection"] and book.flags["HasCorrHeadline"]
    head = c["headline"]
    assert head["arm"] == "ft_k3" and head["ref"] == "base" and head["eval_set"] == "test_unseen"
    assert book.macros["CorrFtVsBaseDiff"] != "n/a" and book.macros["CorrSensBase"] != "n/a"
    assert book.macros["CorrCalibAnswers"] == "Qwen2.5-3B-Instruct"  # from config, not typed in the prose


def test_no_correction_is_said_in_table_and_macros(sample):
    m = sample["gemini"]
    assert m["corrected"]["available"] is False
    assert "No correction available" in tables.corrected(m, 1)
    assert "Not measured" in tables.judge_errors(m, 1)
    book = build_numbers(m, report_cfg())
    assert not book.flags["HasCorrection"] and not book.flags["HasCorrHeadline"]
    assert "gemini" in book.macros["CorrUnavailableReason"] and book.macros["CorrFtVsBaseDiff"] == "n/a"


def test_shipped_error_rates_match_the_calibration_counts():
    """Point estimates are plain proportions of the shipped out-of-fold verdicts (an independent count)."""
    params = json.loads(Path(DEFAULT_PARAMS).read_text())["cv_oof"]
    y = np.array(list(params["y_true"]), int)
    p = np.array(list(params["y_pred"]), int)
    k = np.array(list(params["model"]))
    long = long_table({"base": [0, 1, 0, 0], "ft": [1, 1, 0, 1]})
    corr = compute_corrected(
        study_of(long, n_resamples=200),
        [],
        CorrectionInput(Calibration.from_params(DEFAULT_PARAMS), {"base": "base", "ft": "finetuned"}),
    )
    for r in corr["error_rates"]:
        m = np.ones(len(k), dtype=bool) if r["answer_kind"] == "pooled" else k == r["answer_kind"][0]
        assert r["n_pos"] == int((m & (y == 1)).sum())
        assert r["sensitivity"] == pytest.approx(((p == 1) & (y == 1) & m).sum() / (m & (y == 1)).sum())
        assert r["specificity"] == pytest.approx(((p == 0) & (y == 0) & m).sum() / (m & (y == 0)).sum())
        assert r["sens_lo"] <= r["sensitivity"] <= r["sens_hi"]


def test_every_uncorrected_set_names_its_reason():
    from rbiqa.stats.corrected import CorrectionSettings

    cfg = {"corrected": {**KINDS_CFG["corrected"], "skip_eval_sets": ["general"]}}
    with pytest.raises(InputError, match="reason it is not corrected"):
        CorrectionSettings.from_config(cfg)
    cfg["corrected"]["skip_eval_sets"] = {"general": "  "}
    with pytest.raises(InputError, match="reason it is not corrected"):
        CorrectionSettings.from_config(cfg)
    cfg["corrected"]["skip_eval_sets"] = {"general": "outside the calibration"}
    assert CorrectionSettings.from_config(cfg).skip_eval_sets == {"general": "outside the calibration"}
