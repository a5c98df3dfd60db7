"""No held-out item reaches a training file: the data stages for real on the shipped corpus, then every
text a train job reads (the QA rows with their rephrasings, and the pools mixed in) is checked
against every held-out question with a near-duplicate test of its own, independent of the clean stage's
detector. test_trained is exempt by design (the trained wording, asked verbatim)."""

from __future__ import annotations

import re
import sys

import pytest

from rbiqa import paths as P
from rbiqa.io import read_json, read_jsonl
from tests.conftest import make_workspace, run_cmd

pytestmark = pytest.mark.slow

HELD_OUT = ("test_unseen", "test_paraphrase", "unanswerable", "general")
TRAINING = (P.CLEAN_TRAIN, *P.MIX_POOLS.values())


def grams(text: str, n: int = 5) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def near_copy(question: str, text: str) -> bool:
    """The held-out question, whitespace and case aside, or 90% of its word 5-grams inside the text."""
    norm = lambda s: " ".join(re.findall(r"\w+", s.lower()))  # noqa: E731
    if norm(question) == norm(text):
        return True
    g = grams(question)
    return len(g) >= 4 and len(g & grams(text)) / len(g) >= 0.9


@pytest.fixture(scope="module")
def processed(tmp_path_factory):
    ws = make_workspace(tmp_path_factory.mktemp("separation") / "ws")
    run_cmd([sys.executable, "-m", "snakemake", "--cores", "2", P.CLEAN_ABSTENTION_TRAIN.as_posix()], cwd=ws,
            timeout=900)  # fmt: skip
    return ws


def held_out(ws) -> list[tuple[str, str, str]]:
    out = [(e, it["item_id"], it["question"]) for e in HELD_OUT for it in read_jsonl(ws / P.eval_set_path(e))]
    out += [
        (p.stem, r["row_id"], r["question"])
        for p in (P.CLEAN_VAL, P.CLEAN_VAL_PARA)
        for r in read_jsonl(ws / p)
    ]
    return out


def test_no_held_out_question_in_any_training_file(processed):
    ws = processed
    texts = [
        (p.name, r["row_id"], r[f])
        for p in TRAINING
        for r in read_jsonl(ws / p)
        for f in ("question", "answer")
    ]
    leaks = [
        (name, rid, where, item)
        for where, item, q in held_out(ws)
        for name, rid, text in texts
        if near_copy(q, text)
    ]
    assert leaks == []
    # the abstention examples are their own questions: no id or source is shared with an eval item
    negs = read_jsonl(ws / P.CLEAN_ABSTENTION_TRAIN)
    eval_sources = {it["source_id"] for e in HELD_OUT for it in read_jsonl(ws / P.eval_set_path(e))}
    assert len(negs) >= 30 and not {r["source_id"] for r in negs} & eval_sources
    assert all(r["category"] == "abstention" and r["variant_idx"] == 0 for r in negs)


def test_the_check_catches_a_planted_leak(processed):
    """The check itself can fail: an unanswerable question pasted into a training answer, in other case
    and spacing and with words around it, is found; another abstention example is not."""
    ws = processed
    victim = read_jsonl(ws / P.eval_set_path("unanswerable"))[0]["question"]
    planted = "As asked:  " + victim.upper().replace(" ", "  ") + " I cannot say."
    assert near_copy(victim, planted)
    assert not any(near_copy(victim, r["question"]) for r in read_jsonl(ws / P.CLEAN_ABSTENTION_TRAIN))
    report = read_json(ws / P.CLEAN_REPORT)
    assert report["contamination"]["abstention_train"]["test_questions"]["unanswerable"] > 0


def test_the_mining_set_holds_training_rows_and_no_eval_item(processed):
    """The hard-negative round trains on rows of the mining set: every one is a training row (same
    question, same answer), none is a test_trained item or a near-copy of any held-out question, and the
    subsample is keyed by row-id hashes (the same set on every run)."""
    ws = processed
    mining = read_jsonl(ws / P.eval_set_path(P.TRAIN_MINING))
    train = {r["row_id"]: r for r in read_jsonl(ws / P.CLEAN_TRAIN)}
    assert mining and all(it["eval_set"] == P.TRAIN_MINING for it in mining)
    assert all(train[it["item_id"]]["question"] == it["question"] for it in mining)
    assert all(train[it["item_id"]]["answer"] == it["reference"] for it in mining)
    trained_items = {it["item_id"] for it in read_jsonl(ws / P.eval_set_path("test_trained"))}
    assert trained_items and not trained_items & {it["item_id"] for it in mining}
    leaks = [
        (w, i, it["item_id"]) for w, i, q in held_out(ws) for it in mining if near_copy(q, it["question"])
    ]
    assert leaks == []
    # every training row that is no test_trained item is a candidate; the cap keeps the smallest hashes
    candidates = [rid for rid in train if rid not in trained_items]
    report = read_json(ws / P.CLEAN_REPORT)["train_mining"]
    assert len(mining) == min(len(candidates), report["max_items"]) == report["items"]
