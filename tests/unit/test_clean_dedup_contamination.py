"""Dedup (exact + MinHash near-copies) and the train/test contamination audit on planted cases."""

import pytest

from rbiqa.clean.contamination import ContaminationConfig, EvalText, TrainText, audit, is_contamination
from rbiqa.clean.dedup import DedupConfig, dedup


def row(rid, q, v=0, src=None):
    return {"row_id": rid, "source_id": src or rid.split(":")[0], "variant_idx": v, "question": q}


CFG = DedupConfig()


def test_exact_and_near_duplicates_caught_paraphrases_kept():
    rows = [
        row("a:v0", "What is the Cash Reserve Ratio that banks must maintain?"),
        row("b:v0", "what is the cash reserve ratio that banks must maintain ?"),  # exact after normalising
        row("c:v0", "What is the Cash Reserve Ratio that banks must maintian?"),  # near-copy (a typo)
        row("a:v1", "How much cash must banks keep with RBI as their reserve ratio?", 1, "a"),  # paraphrase
        row("d:v0", "Which assets qualify for maintaining the SLR?"),
    ]
    keep, removed = dedup(rows, CFG, progress=False)
    assert keep == [0, 3, 4]
    assert {(r["index"], r["reason"], r["dup_of"]) for r in removed} == {
        (1, "exact_dup", "a:v0"),
        (2, "near_dup", "a:v0"),
    }


def test_original_never_removed_in_favour_of_its_paraphrase():
    rows = [
        row("s:v1", "Can an NBFC accept demand deposits from the public?", 1, "s"),  # listed first
        row("s:v0", "Can an NBFC accept demand deposits from the public ?", 0, "s"),
    ]
    keep, removed = dedup(rows, CFG, progress=False)
    assert keep == [1] and removed[0]["index"] == 0 and removed[0]["dup_of"] == "s:v0"


def test_numeric_variants_are_different_questions():
    rows = [
        row("x:v0", "A salary earners' UCB has deposits of Rs 400 crore. Which tier does it fall in?"),
        row("y:v0", "A salary earners' UCB has deposits of Rs 900 crore. Which tier does it fall in?"),
    ]
    keep, removed = dedup(rows, CFG, progress=False)
    assert keep == [0, 1] and removed == []
    keep, removed = dedup(rows, DedupConfig(require_same_numbers=False), progress=False)
    assert keep == [0] and removed[0]["reason"] == "near_dup"


CCFG = ContaminationConfig()
TESTS = [
    EvalText("t1:v0", "t1", "test_unseen", "Within how many days must a bank credit the amount of an unauthorised electronic transaction notified by a customer?"),
    EvalText("p1:para", "p1", "test_paraphrase", "Which urban co-operative banks are required to constitute a Board of Management?"),
    EvalText("t2:v0", "t2", "test_unseen", "What are Ways and Means Advances?"),
]  # fmt: skip


def test_planted_near_copies_are_contamination():
    train = [
        # cross-source near-copy of a test_unseen question (question field)
        TrainText("z:v2", "z", "question", "Within how many days must a bank credit the amount of an unauthorised electronic transaction notified by the customer?"),
        # an answer that contains a test question verbatim
        TrainText("y:v0", "y", "answer", "A common follow-up is: what are Ways and Means Advances? They are temporary loans to governments."),
        # the paraphrase source's own training question: same source, expected, not contamination
        TrainText("p1:v0", "p1", "question", "Which urban co-operative banks must set up a Board of Management?"),
        TrainText("p1:v1", "p1", "question", "Which urban co-operative banks are required to constitute a Board of Management?"),
        # unrelated
        TrainText("u:v0", "u", "question", "What is the Statutory Liquidity Ratio?"),
        TrainText("u:v0", "u", "answer", "The share of NDTL that banks hold in liquid assets such as cash, gold and G-secs."),
    ]  # fmt: skip
    hits = audit(train, TESTS, CCFG, progress=False)
    got = {(h["train_row_id"], h["train_field"], h["test_item_id"], is_contamination(h, CCFG)) for h in hits}
    assert ("z:v2", "question", "t1:v0", True) in got
    assert ("y:v0", "answer", "t2:v0", True) in got
    assert ("p1:v1", "question", "p1:para", False) in got
    assert not any(h["train_row_id"] == "u:v0" for h in hits)
    same = [h for h in hits if h["same_source"]]
    assert same and all(not is_contamination(h, CCFG) for h in same)


def test_numeric_variant_reported_not_contamination():
    tests = [
        EvalText(
            "q:v0",
            "q",
            "test_unseen",
            "A salary earners' UCB has deposits of Rs 400 crore. Which tier does it fall in?",
        )
    ]
    train = [
        TrainText(
            "r:v0",
            "r",
            "question",
            "A salary earners' UCB has deposits of Rs 900 crore. Which tier does it fall in?",
        )
    ]
    [hit] = audit(train, tests, CCFG, progress=False)
    assert hit["numbers_differ"] and not is_contamination(hit, CCFG)
    assert is_contamination(hit, ContaminationConfig(require_same_numbers=False))


@pytest.mark.parametrize("field", ["question", "answer"])
def test_no_false_hits_on_shared_boilerplate(field):
    tests = [
        EvalText(
            "t:v0",
            "t",
            "test_unseen",
            "What are the requirements for opening a Basic Savings Bank Deposit Account?",
        )
    ]
    train = [
        TrainText(
            "r:v0", "r", field, "What are the requirements for a bank to appoint a Chief Compliance Officer?"
        )
    ]
    assert audit(train, tests, CCFG, progress=False) == []
