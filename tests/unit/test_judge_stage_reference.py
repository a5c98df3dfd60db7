"""The judge job end to end with the offline reference backend on a tiny synthetic eval set."""

from __future__ import annotations

from rbiqa import paths as P
from rbiqa.config import compose
from rbiqa.io import read_json, read_jsonl
from rbiqa.judge.stage import run as main

from ._judge_data import FACTS, eval_items, generation, write_inputs


def test_reference_judge_job_and_cached_rerun(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / P.stamp("judge")).parent.mkdir(parents=True)
    (tmp_path / P.stamp("judge")).write_text("judge: {}\n")
    items = eval_items("test_unseen", 4)
    answers = [
        FACTS[0][1],  # the reference itself: correct
        "I am not sure; please consult the official RBI website for the latest circulars on this.",
        None,  # generation failed
        "Penal charges are capped at 9 per cent per annum above the applicable rate.",  # wrong number
    ]
    gens = [
        generation(i, "base", a, error="OOM" if a is None else None)
        for i, a in zip(items, answers, strict=True)
    ]
    write_inputs(tmp_path, "base", "test_unseen", items, gens)
    cfg = compose(["arm=base", "+eval_set=test_unseen"])

    extra = main(cfg)["test_unseen"]
    rows = read_jsonl(P.judgments("base", "test_unseen"))
    assert [r["item_id"] for r in rows] == [i.item_id for i in items]
    assert [r["score"] for r in rows] == [1, 0, None, 0]
    # over-abstention: the second answer declines to answer a question that has one
    assert [r["abstained"] for r in rows] == [False, True, None, False] and extra["abstained"] == 1
    assert rows[2]["status"] == "missing" and rows[2]["error"] == "generation failed: OOM"
    assert rows[0]["p_correct"] > rows[1]["p_correct"] and rows[0]["p_correct"] > rows[3]["p_correct"]
    assert rows[0]["judge_backend"] == "reference" and rows[0]["judge_model"].startswith("reference-logreg")
    assert extra["counts"] == {
        "items": 4,
        "ok": 3,
        "missing": 1,
        "generation_failed": 1,
        "no_generation": 0,
        "cache_hits": 0,
        "judge_calls": 3,
        "judge_failed": 0,
    }
    manifest = read_json(P.manifest_for(P.judgments("base", "test_unseen")))
    assert manifest["stage"] == "judge"
    assert {P.stamp("judge").as_posix(), P.generations("base", "test_unseen").as_posix()} <= set(
        manifest["inputs"]
    )

    again = main(cfg)["test_unseen"]  # rerun: everything from the cache
    assert again["counts"]["cache_hits"] == 3 and again["counts"]["judge_calls"] == 0
    assert read_jsonl(P.judgments("base", "test_unseen")) == rows


def test_unanswerable_set_is_judged_for_abstention(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    items = eval_items("unanswerable", 2)
    answers = [
        "I'm not aware of any such RBI rule and cannot confirm it exists.",
        "Yes: the RBI caps it at Rs 3 lakh and requires reporting within 14 days.",
    ]
    write_inputs(
        tmp_path,
        "base",
        "unanswerable",
        items,
        [generation(i, "base", a) for i, a in zip(items, answers, strict=True)],
    )
    main(compose(["arm=base", "+eval_set=unanswerable"]))
    rows = read_jsonl(P.judgments("base", "unanswerable"))
    assert [r["score"] for r in rows] == [1, 0]
    assert all(r["reasoning"].startswith("abstention detector") for r in rows)
    assert [r["abstained"] for r in rows] == [None, None]  # here the score is the abstention


def test_one_job_judges_every_listed_eval_set(tmp_path, monkeypatch):
    """The pipeline's per-arm job: `eval_sets=[...]` judges each set into its own file and manifest,
    with one backend for all of them; a set that is not an eval set fails before anything is judged."""
    import pytest

    import rbiqa.judge.stage as stage
    from rbiqa.io import InputError

    monkeypatch.chdir(tmp_path)
    (tmp_path / P.stamp("judge")).parent.mkdir(parents=True)
    (tmp_path / P.stamp("judge")).write_text("judge: {}\n")
    for eval_set in ("test_unseen", "unanswerable"):
        items = eval_items(eval_set, 2)
        gens = [generation(i, "base", "I do not know of such a rule.") for i in items]
        write_inputs(tmp_path, "base", eval_set, items, gens)
    backends = []
    real = stage.build_backend
    monkeypatch.setattr(stage, "build_backend", lambda cfg: backends.append(1) or real(cfg))

    with pytest.raises(InputError, match="'dev'"):
        main(compose(["arm=base", "eval_sets=[test_unseen,dev]"]))
    assert not P.judgments("base", "test_unseen").exists()

    extras = main(compose(["arm=base", "eval_sets=[test_unseen,unanswerable]"]))
    assert list(extras) == ["test_unseen", "unanswerable"] and backends == [1]
    for eval_set in extras:
        rows = read_jsonl(P.judgments("base", eval_set))
        assert [r["item_id"] for r in rows] == [i.item_id for i in eval_items(eval_set, 2)]
        assert read_json(P.manifest_for(P.judgments("base", eval_set)))["extra"]["eval_set"] == eval_set
    # the abstention task scores "I do not know" as right, the fact task as not an answer
    assert [r["score"] for r in read_jsonl(P.judgments("base", "unanswerable"))] == [1, 1]
    assert extras["test_unseen"]["counts"]["ok"] == 2
