"""The human-label loop end to end on a tiny judged run: `labels export` (CLI) writes a blinded sheet, the
test labels it as a person would, `labels ingest` (CLI) un-blinds and stores it, judge_agreement reports
kappa per eval set against hand-computed values, and the report's table and macros show it."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from rbiqa import paths as P
from rbiqa.judge.labels import KEY_COLUMNS, LABEL_COLUMNS, SHEET_COLUMNS
from tests.conftest import run_cmd
from tests.unit._labels_fixtures import (
    ARMS,
    EXPECTED_KAPPA,
    EXPECTED_N,
    REF_MODEL,
    label_like_a_person,
    write_run,
    write_second_judge,
)

SETS_OVERRIDE = "study.eval_sets=[test_unseen,unanswerable,general]"
ARMS_OVERRIDE = f"study.arms=[{','.join(ARMS)}]"
LABELS = [sys.executable, "-m", "rbiqa.judge.labels"]


def read_csv(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def agreement_cfg(*extra):
    from rbiqa.config import compose

    return compose(
        [
            "judge.agreement.n_boot=300",
            "judge.agreement.human_min_n=10",
            "judge.agreement.judgment_globs=[results/*/judgments/*.jsonl,results_gemini/*/judgments/*.jsonl]",
            *extra,
        ]
    )


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    truth = write_run()
    write_second_judge()
    return tmp_path, truth


def test_export_label_ingest_agreement(run_dir):
    root, truth = run_dir
    export = [*LABELS, "export", ARMS_OVERRIDE, SETS_OVERRIDE, "labels.name=demo", "labels.n_per_set=100"]
    run_cmd(export, cwd=root)

    # the labeller's sheet: blinded (no arm, no verdict), shuffled, every judged answer of every set
    sheet = root / P.label_sheet("demo")
    rows = read_csv(sheet)
    assert tuple(rows[0]) == SHEET_COLUMNS
    assert len(rows) == sum(EXPECTED_N[e] for e in ("test_unseen", "unanswerable", "general"))
    text = sheet.read_text(encoding="utf-8")
    for hidden in (*ARMS, REF_MODEL, "reference:", "score"):
        assert hidden not in text, f"{hidden!r} leaks into the labeller's sheet"
    assert all(r["label"] == "" for r in rows)
    order = [r["eval_set"] for r in rows]
    assert order != sorted(order), "rows are not shuffled"
    unans = [r for r in rows if r["eval_set"] == "unanswerable"]
    assert all(r["reference_answer"] == "" and "abstain" in r["rubric"] for r in unans)
    readme = (root / P.label_readme("demo")).read_text(encoding="utf-8")
    assert "abstain" in readme and "ingest" in readme
    key = read_csv(root / P.label_key("demo"))
    assert tuple(key[0]) == KEY_COLUMNS and {r["arm"] for r in key} == set(ARMS)
    assert json.loads((root / P.label_export_manifest("demo")).read_text())["stage"] == "labels_export"

    # a person labels it (and sorts the rows), saved outside the repository layout
    filled = root / "filled_by_hand.csv"
    label_like_a_person(sheet, filled)
    run_cmd([*LABELS, "ingest", str(filled), "labels.labeller=tester"], cwd=root)

    stored = pd.read_csv(root / P.labels_csv("demo"), dtype=str)
    assert tuple(stored.columns) == LABEL_COLUMNS and len(stored) == len(rows)
    for r in stored.itertuples():
        assert int(r.score) == truth[(r.arm, r.eval_set, r.item_id)]
    assert set(stored["labeller"]) == {"tester"}
    assert (root / P.label_sheet_labelled("demo")).read_bytes() == filled.read_bytes()
    assert json.loads((root / P.label_ingest_manifest("demo")).read_text())["extra"]["n_labelled"] == len(
        rows
    )

    # judge_agreement: kappa per eval set (and pooled) against the hand-computed values
    from rbiqa.judge.agreement import JUDGE_CONFUSION, main

    result = main(agreement_cfg())
    hl = result["human_labels"]
    assert hl["n_labels"] == len(rows) and hl["n_stale"] == 0 and hl["n_unverified"] == 0
    assert hl["label_files"] == [P.labels_csv("demo").as_posix()]
    ref = {c["eval_set"]: c for c in hl["comparisons"] if c["rater"] == f"reference:{REF_MODEL}"}
    assert set(ref) == set(EXPECTED_KAPPA)
    for e, kappa in EXPECTED_KAPPA.items():
        assert ref[e]["kappa"] == pytest.approx(kappa), e
        assert ref[e]["n"] == EXPECTED_N[e]
        lo, hi = ref[e]["kappa_ci"]
        assert lo <= ref[e]["kappa"] <= hi
        assert ref[e]["small_n"] == (EXPECTED_N[e] < 10)
    assert ref["unanswerable"]["judge_kind"] == "abstention"
    assert ref["test_unseen"]["judge_kind"] == "correctness" and ref["general"]["small_n"]
    assert ref["test_unseen"]["confusion"]["matrix"] == [[4, 1], [2, 5]]  # rows: human 0/1
    assert ref["answerable (pooled)"]["scope"] == "pooled"
    gem = [c for c in hl["comparisons"] if c["rater"] == "gemini:g"]
    assert [(c["eval_set"], c["kappa"]) for c in gem] == [("test_unseen", 1.0)]
    # the pooled legacy block, and the confusion CSV rows
    human = {tuple(c["raters"]): c for c in result["human"]}
    assert human[("human", f"reference:{REF_MODEL}")]["n"] == len(rows)
    conf = pd.read_csv(JUDGE_CONFUSION)
    assert "human_labels:unanswerable" in set(conf["comparison"])
    manifest = json.loads(P.manifest_for(P.JUDGE_AGREEMENT).read_text())
    assert P.labels_csv("demo").as_posix() in manifest["inputs"]

    # the report: stats passes the block through; the table and the macros show it
    from rbiqa.figures.data import Metrics
    from rbiqa.figures.human_labels import add_macros, table
    from rbiqa.figures.numbers import NumberBook
    from rbiqa.stats.agreement import read_agreement

    m = Metrics({"judge_agreement": read_agreement(P.JUDGE_AGREEMENT)})
    tex = table(m, 1)
    assert r"\label{tab:humanlabels}" in tex and r"\texttt{unanswerable} & abstention" in tex
    assert "0.50" in tex and "0.67" in tex and "0.70" in tex
    book = NumberBook()
    add_macros(book, m)
    assert book.flags["HasHumanLabels"] and book.macros["HumanLabelN"] == str(len(rows))

    # an answer regenerated since it was labelled: its label is stale, left out and counted
    gpath = P.generations("base", "test_unseen")
    gens = [json.loads(line) for line in gpath.read_text().splitlines()]
    gens[0]["answer"] = "A different answer after a rerun."
    gpath.write_text("".join(json.dumps(g) + "\n" for g in gens))
    hl = main(agreement_cfg())["human_labels"]
    assert hl["n_stale"] == 1
    ref = {c["eval_set"]: c for c in hl["comparisons"] if c["rater"] == f"reference:{REF_MODEL}"}
    assert ref["test_unseen"]["n"] == EXPECTED_N["test_unseen"] - 1


def test_no_labels_says_how_to_start(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_run()
    from rbiqa.figures.data import Metrics
    from rbiqa.figures.human_labels import add_macros, table
    from rbiqa.figures.numbers import NumberBook
    from rbiqa.judge.agreement import main
    from rbiqa.stats.agreement import read_agreement

    result = main(agreement_cfg())
    assert result["human_labels"] is None and result["human"] is None
    m = Metrics({"judge_agreement": read_agreement(P.JUDGE_AGREEMENT)})
    assert "python -m rbiqa.judge.labels export" in table(m, 1)
    book = NumberBook()
    add_macros(book, m)
    assert book.flags["HasHumanLabels"] is False and book.flags["HumanLabelsUnmatched"] is False

    # labels of answers no judge of this run scored: said so, not silently empty
    P.labels_csv("old").parent.mkdir(parents=True, exist_ok=True)
    P.labels_csv("old").write_text("arm,eval_set,item_id,score\nghost,general,ge0,1\n")
    result = main(agreement_cfg())
    assert result["human_labels"]["n_labels"] == 1 and result["human_labels"]["comparisons"] == []
    m = Metrics({"judge_agreement": read_agreement(P.JUDGE_AGREEMENT)})
    assert "no labelled answer was scored by a judge of this run" in table(m, 1)
    book = NumberBook()
    add_macros(book, m)
    assert book.flags["HasHumanLabels"] is False and book.flags["HumanLabelsUnmatched"] is True


def test_cli_reports_bad_input(run_dir):
    root, _ = run_dir
    proc = run_cmd([*LABELS, "ingest", "nope.csv"], cwd=root, check=False)
    assert proc.returncode != 0 and "labelled sheet not found: nope.csv" in proc.stderr
    proc = run_cmd([*LABELS, "frobnicate"], cwd=root, check=False)
    assert proc.returncode != 0 and "usage" in proc.stderr
