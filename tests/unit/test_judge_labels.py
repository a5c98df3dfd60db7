"""rbiqa.judge.labels: the sample is stratified, seeded and blinded; ingest refuses every kind of bad
sheet with counts and stores nothing; label files that disagree are refused by judge_agreement."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rbiqa import paths as P
from rbiqa.io import InputError
from rbiqa.judge.labels import allocate, export, ingest, load_label_files, stratified_sample
from tests.unit._labels_fixtures import ARMS, label_like_a_person, write_run


def cfg(*extra):
    from rbiqa.config import compose

    return compose(
        [
            f"study.arms=[{','.join(ARMS)}]",
            "study.eval_sets=[test_unseen,unanswerable,general]",
            "labels.name=t",
            *extra,
        ]
    )


@pytest.fixture
def exported(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    truth = write_run()
    export(cfg("labels.n_per_set=100"))
    return tmp_path, truth


def read_rows(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


# ------------------------------------------------------------------------------------------- sampling


def test_allocate_splits_evenly_and_redistributes_what_an_arm_lacks():
    rng = np.random.default_rng(0)
    assert allocate(10, {"a": 50, "b": 50}, rng) == {"a": 5, "b": 5}
    q = allocate(10, {"a": 50, "b": 50, "c": 50}, rng)
    assert sorted(q.values()) == [3, 3, 4]
    assert allocate(10, {"a": 2, "b": 50}, rng) == {"a": 2, "b": 8}
    assert allocate(10, {"a": 2, "b": 3}, rng) == {"a": 2, "b": 3}


def population(n_items=20, arms=("a", "b")):
    return pd.DataFrame(
        [
            {"arm": a, "eval_set": e, "item_id": f"{e}{i}", "source_id": f"s{e}{i}", "answer": f"{a}{i}"}
            for e in ("test_unseen", "general")
            for a in arms
            for i in range(n_items)
        ]
    )


def test_sample_is_stratified_distinct_shuffled_and_seeded():
    pop = population()
    s = stratified_sample(pop, ["test_unseen", "general"], 10, seed=3)
    assert Counter(zip(s.eval_set, s.arm, strict=True)) == {
        (e, a): 5 for e in ("test_unseen", "general") for a in ("a", "b")
    }
    for e in ("test_unseen", "general"):  # 10 of 20 sources: no source question twice
        assert s[s.eval_set == e]["source_id"].nunique() == 10
    assert list(s.eval_set) != sorted(s.eval_set)
    pd.testing.assert_frame_equal(s, stratified_sample(pop, ["test_unseen", "general"], 10, seed=3))
    assert not s.equals(stratified_sample(pop, ["test_unseen", "general"], 10, seed=4))
    # 30 of 40 answers with 20 sources: sources repeat only once all were drawn
    s = stratified_sample(pop, ["test_unseen"], 30, seed=3)
    assert len(s) == 30 and s["source_id"].nunique() == 20
    assert len(stratified_sample(pop, ["test_unseen"], 1000, seed=3)) == 40


def test_export_is_deterministic_and_refuses_to_overwrite(exported):
    root, _ = exported
    first = (root / P.label_sheet("t")).read_bytes()
    with pytest.raises(InputError, match="already exist"):
        export(cfg("labels.n_per_set=100"))
    export(cfg("labels.n_per_set=100", "labels.overwrite=true"))
    assert (root / P.label_sheet("t")).read_bytes() == first
    export(cfg("labels.n_per_set=4", "labels.overwrite=true", "labels.seed=99"))
    rows = read_rows(root / P.label_sheet("t"))
    assert Counter(r["eval_set"] for r in rows) == {"test_unseen": 4, "unanswerable": 4, "general": 4}
    key = read_rows(root / P.label_key("t"))
    assert Counter(r["arm"] for r in key) == {"base": 6, "ft_k3": 6}


def test_export_skips_answers_the_judge_did_not_score(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_run(judge_missing=("base", "general", "ge0"))
    info = export(cfg("labels.n_per_set=100"))
    assert info["population"]["general"]["base"] == {"judged": 3, "not_judged": 1}
    key = read_rows(P.label_key("t"))
    assert ("base", "ge0") not in {(r["arm"], r["item_id"]) for r in key}


def test_export_without_judgments_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_run()
    for f in Path("results").rglob("judgments/*.jsonl"):
        f.unlink()
    with pytest.raises(InputError, match="run the judge stage first"):
        export(cfg())


# --------------------------------------------------------------------------------------------- ingest


def _ingest_fails(root: Path, edit, match: str, *extra) -> str:
    filled = root / "filled.csv"
    label_like_a_person(root / P.label_sheet("t"), filled, edit)
    with pytest.raises(InputError, match=match) as e:
        ingest(cfg(*extra), filled)
    assert not P.labels_csv("t").exists(), "a refused sheet must store nothing"
    return str(e.value)


def test_ingest_refuses_a_label_other_than_0_or_1(exported):
    def edit(rows):
        rows[0]["label"], rows[3]["label"] = "yes", "2"

    msg = _ingest_fails(exported[0], edit, "label not 0 or 1: 2")
    assert "'yes'" in msg and "nothing was stored" in msg


def test_ingest_refuses_an_unknown_row_id(exported):
    def edit(rows):
        rows[1]["row_id"] = "t-9999"

    _ingest_fails(exported[0], edit, r"unknown row_id \(not in the key\): 1 \(line 3 't-9999'\)")


def test_ingest_refuses_a_duplicate_row(exported):
    def edit(rows):
        return [*rows, dict(rows[2])]

    _ingest_fails(exported[0], edit, "duplicate row_id: 1")


def test_ingest_refuses_missing_labels_unless_allowed(exported):
    root, truth = exported

    def edit(rows):
        rows[0]["label"] = rows[5]["label"] = " "
        return rows[:-1]  # and one row deleted

    _ingest_fails(root, edit, r"no label \(pass labels.allow_missing=true to store the others\): 3")
    filled = root / "filled.csv"
    info = ingest(cfg("labels.allow_missing=true"), filled)
    stored = pd.read_csv(P.labels_csv("t"), dtype=str)
    n_rows = len(read_rows(P.label_key("t")))
    assert info["n_missing"] == 3 and info["n_labelled"] == len(stored) == n_rows - 3
    assert all(int(r.score) == truth[(r.arm, r.eval_set, r.item_id)] for r in stored.itertuples())


def test_ingest_refuses_edited_text_and_rows_of_another_sheet(exported):
    def edit(rows):
        rows[0]["model_answer"] = rows[0]["model_answer"].replace("answer", "reply")

    _ingest_fails(exported[0], edit, "text differs from the export")

    def edit2(rows):
        rows[0]["row_id"] = "other-0001"

    _ingest_fails(exported[0], edit2, "rows of several sheets")


def test_ingest_tolerates_whitespace_and_a_bom(exported):
    root, _ = exported
    filled = root / "filled.csv"
    label_like_a_person(root / P.label_sheet("t"), filled)
    text = filled.read_text(encoding="utf-8").replace("\n", "\r\n")
    filled.write_bytes("\ufeff".encode() + text.encode("utf-8"))
    ingest(cfg(), filled)
    assert P.labels_csv("t").exists()
    with pytest.raises(InputError, match="already exists"):
        ingest(cfg(), filled)


@pytest.mark.parametrize(
    "content, match",
    [
        ("row_id,label\nt-0001,1\n".encode("cp1252") + b"t-0002,\xe9\n", "not UTF-8"),
        (b'row_id,label\nt-0001,"1\n', "malformed CSV"),
        (b"row_id,label\nt-0001,1,extra\n", "1 malformed rows: line 2: 3 fields"),
        (b"id,verdict\nt-0001,1\n", r"missing columns \['row_id', 'label'\]"),
        (b"", "empty file"),
        (b"\x00\x01\x02", "NUL"),
        (b"row_id,label\nx1,1\n", "no row_id looks like"),
    ],
)
def test_ingest_refuses_malformed_files(exported, content, match):
    bad = exported[0] / "bad.csv"
    bad.write_bytes(content)
    with pytest.raises(InputError, match=match):
        ingest(cfg(), bad)
    assert not P.labels_csv("t").exists()


# ---------------------------------------------------------------------------------- label files read


def test_label_files_that_disagree_are_refused(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("arm,eval_set,item_id,score\nbase,general,g1,1\nbase,general,g2,0\n")
    b.write_text("arm,eval_set,item_id,score,labeller\nbase,general,g1,1,x\n")
    df = load_label_files([a, b])
    assert len(df) == 2 and set(df["answer_sha256"]) == {""}  # agreeing repeats kept once
    b.write_text("arm,eval_set,item_id,score\nbase,general,g1,0\n")
    with pytest.raises(InputError, match="1 answers are labelled differently"):
        load_label_files([a, b])
