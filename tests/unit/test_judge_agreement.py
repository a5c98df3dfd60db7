"""Agreement statistics and the judge_agreement job on synthetic raters."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf
from sklearn.metrics import cohen_kappa_score

from rbiqa import paths as P
from rbiqa.io import InputError
from rbiqa.judge.agreement import human_agreement, judge_pairs, load_human_labels, reference_vs_labels
from rbiqa.stats.kappa import bootstrap_kappa_ci, kappa_summary

ACFG = OmegaConf.create({"seed": 7, "n_boot": 300, "calibration_csv": None})


def test_kappa_summary_matches_sklearn_and_counts():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2, 200)
    b = np.where(rng.random(200) < 0.8, a, 1 - a)
    s = kappa_summary(a, b, clusters=np.arange(200) // 2, n_boot=300, seed=1)
    assert s["kappa"] == pytest.approx(cohen_kappa_score(a, b))
    m = np.array(s["confusion"]["matrix"])
    assert m.sum() == 200 and m[0, 0] + m[1, 1] == int((a == b).sum())
    assert s["kappa_ci"][0] < s["kappa"] < s["kappa_ci"][1]
    assert s["accuracy"] == pytest.approx((a == b).mean())


def test_bootstrap_is_seeded_and_cluster_aware():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 2, 300)
    b = np.where(rng.random(300) < 0.75, a, 1 - a)
    assert bootstrap_kappa_ci(a, b, n_boot=200, seed=3) == bootstrap_kappa_ci(a, b, n_boot=200, seed=3)
    # duplicating every row inside its own cluster must not narrow the interval
    lo1, hi1 = bootstrap_kappa_ci(a, b, clusters=np.arange(300), n_boot=400, seed=3)
    lo2, hi2 = bootstrap_kappa_ci(
        np.repeat(a, 2), np.repeat(b, 2), clusters=np.repeat(np.arange(300), 2), n_boot=400, seed=3
    )
    assert (hi2 - lo2) > 0.8 * (hi1 - lo1)
    lo3, hi3 = bootstrap_kappa_ci(np.repeat(a, 2), np.repeat(b, 2), n_boot=400, seed=3)  # naive: too narrow
    assert (hi3 - lo3) < (hi2 - lo2)


def test_reference_vs_labels_reads_stored_oof(tmp_path):
    y = "0101101100" * 10
    pred = "0101101110" * 10
    params = {
        "C": 1.0,
        "seed": 1,
        "threshold": 0.5,
        "cv": {"n_splits": 5},
        "training_data": {"sha256": "x"},
        "cv_oof": {"y_true": y, "y_pred": pred, "cluster": list(range(100)), "model": "bf" * 50},
        "holdout": {"n": 20, "kappa": 0.5, "per_model": {}, "not_reported": 1},
    }
    path = tmp_path / "p.json"
    path.write_text(json.dumps(params))
    s = reference_vs_labels(ACFG, path)
    assert s["kappa"] == pytest.approx(cohen_kappa_score(list(map(int, y)), list(map(int, pred))))
    assert s["n"] == 100 and "stored out-of-fold" in s["source"]
    # per answer model: rows alternate base / fine-tuned, and the judge's one error (row 8 of every 10)
    # falls on a base answer
    yb, pb = [int(c) for c in y[::2]], [int(c) for c in pred[::2]]
    assert s["per_model"]["base"]["n"] == 50
    assert s["per_model"]["base"]["rate_gap"] == pytest.approx(sum(pb) / 50 - sum(yb) / 50)
    assert s["per_model"]["finetuned"]["kappa"] == 1.0
    assert s["holdout"] == {"n": 20, "kappa": 0.5, "per_model": {}}


def _rows(rater_backend, scores):
    return [
        {
            "arm": "base",
            "eval_set": "test_unseen",
            "item_id": f"i{k}",
            "source_id": f"s{k // 2}",
            "score": s,
            "rater": f"{rater_backend}:m",
        }
        for k, s in enumerate(scores)
    ]


def test_judge_pairs_compare_common_scored_items_only():
    df = pd.DataFrame(_rows("gemini", [1, 0, 1, None, 1, 0]) + _rows("reference", [1, 0, 0, 1, 1, 0])[:5])
    pairs = judge_pairs(df, ACFG)
    assert len(pairs) == 1 and pairs[0]["raters"] == ["gemini:m", "reference:m"]
    assert pairs[0]["n"] == 4  # item i3 is missing for gemini, i5 absent for reference
    dup = pd.concat([df, df.iloc[[0]]])
    with pytest.raises(InputError, match="more than once"):
        judge_pairs(dup, ACFG)


def test_human_labels(tmp_path):
    path = tmp_path / "human.csv"
    path.write_text(
        "arm,eval_set,item_id,score\nbase,test_unseen,i0,1\nbase,test_unseen,i1,1\nbase,test_unseen,i2,0\n"
    )
    df = pd.DataFrame(_rows("gemini", [1, 0, 0]))
    res = human_agreement(df, load_human_labels(path), ACFG)
    assert (
        res[0]["raters"] == ["human", "gemini:m"]
        and res[0]["n"] == 3
        and res[0]["accuracy"] == pytest.approx(2 / 3)
    )
    path.write_text("arm,eval_set,item_id,score\nbase,test_unseen,i0,maybe\n")
    with pytest.raises(InputError, match="score other than 0/1"):
        load_human_labels(path)
    path.write_text("arm,item_id,score\n")
    with pytest.raises(InputError, match="missing columns"):
        load_human_labels(path)
    with pytest.raises(InputError, match="not found"):
        load_human_labels(tmp_path / "nope.csv")


def test_agreement_job_writes_outputs(tmp_path, monkeypatch):
    from rbiqa.config import compose
    from rbiqa.judge.agreement import JUDGE_CONFUSION, main

    monkeypatch.chdir(tmp_path)
    for backend, scores in (("reference", [1, 0, 1, 1, 0, 0]), ("gemini", [1, 0, 0, 1, 0, 1])):
        d = tmp_path / f"results_{backend}" / "base" / "judgments"
        d.mkdir(parents=True)
        rows = [
            {
                "item_id": f"i{k}",
                "source_id": f"s{k}",
                "eval_set": "general",
                "arm": "base",
                "score": s,
                "status": "ok",
                "judge_backend": backend,
                "judge_model": "m",
            }
            for k, s in enumerate(scores)
        ]
        (d / "general.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = compose(
        ["judge.agreement.n_boot=200", "judge.agreement.judgment_globs=[results_*/*/judgments/*.jsonl]"]
    )
    result = main(cfg)
    assert json.loads(P.JUDGE_AGREEMENT.read_text())["judge_pairs"][0]["n"] == 6
    # what the stage writes is what rbiqa.stats.agreement reads (rbiqa.files.AgreementReport)
    from rbiqa.files import AgreementReport, Manifest
    from rbiqa.io import read_validated

    assert read_validated(P.JUDGE_AGREEMENT, AgreementReport).judge_pairs[0].n == 6
    assert read_validated(P.manifest_for(P.JUDGE_AGREEMENT), Manifest).stage == "judge_agreement"
    assert result["reference_vs_labels"]["kappa"] >= 0.6
    conf = pd.read_csv(JUDGE_CONFUSION)
    assert set(conf["comparison"]) == {"reference_vs_labels", "judge_pair"} and len(conf) == 8
    assert P.manifest_for(P.JUDGE_AGREEMENT).exists()
