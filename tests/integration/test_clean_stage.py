"""The clean stage end to end on a small fixture: PII, dedup, contamination, eval sets (test_trained from
the surviving originals), val_paraphrase, accounting."""

from __future__ import annotations

import pytest

from rbiqa import paths as P
from rbiqa.clean.stage import run
from rbiqa.config import compose
from rbiqa.io import InputError, read_json, read_jsonl, write_jsonl
from rbiqa.schemas import EvalItem

META = {
    "regulation_area": "KYC",
    "applicable_to": "Banks",
    "category": "fact-based",
    "estimated_difficulty": 2,
}
SPLIT_META = {**META, "source": "test", "as_of": 2024}


TRAINED_EVAL = {"c", "d", "p"}  # asked verbatim in test_trained (d's original is removed: contamination)


def trow(src, v, q, a="Some answer."):
    return {"row_id": f"{src}:v{v}", "source_id": src, "variant_idx": v, "question": q, "answer": a, **META,
            "trained_eval": src in TRAINED_EVAL}  # fmt: skip


def srow(src, q, split, a="Ref answer."):
    return {"id": src, "question": q, "answer": a, "split": split, "para_eval": False, **SPLIT_META}


TRAIN = [
    trow("a", 0, "What is the periodicity of KYC updation for high-risk customers?"),
    trow("a", 1, "How often must the KYC of high-risk customers be updated?"),
    trow("a", 2, "How often must the KYC of high risk customers be updated ?"),  # exact dup of a:v1
    trow("b", 0, "Can a customer with PAN ABCPE1234F open an account online?"),  # PII -> redacted
    trow("c", 0, "Which documents are officially valid documents for KYC purposes?"),
    # contamination: near-copy of test_unseen question u1, from another source
    trow("d", 0, "Within how many days must a bank credit the amount of an unauthorised electronic transaction notified by a customer?"),
    trow("d", 1, "In how many days does a bank credit an unauthorised electronic transaction a customer notified?", ),
    trow("p", 0, "Which urban co-operative banks must set up a Board of Management?"),
    trow("p", 1, "Which urban co-operative banks are required to set up a Board of Management?"),
    trow("e", 0, "What is the KYC requirement for small accounts?"),
    trow("f", 0, "What is the ceiling on balances in a small account?"),
    trow("g", 0, "Can a small account be opened without officially valid documents?"),
]  # fmt: skip
PARA = [{"row_id": "p:para", "source_id": "p", "question": "Which urban co-operative banks are required to set up the Board of Management?",
         "original_question": TRAIN[7]["question"], "answer": "UCBs with deposits of Rs 100 crore and above.", **META}]  # fmt: skip
VAL_PARA = [{"row_id": "e:valpara", "source_id": "e", "question": "Under the KYC rules, how are small accounts treated?",
             "original_question": TRAIN[9]["question"], "answer": "Simplified KYC applies.", **META}]  # fmt: skip
UNSEEN = [srow("u1", "Within how many days must a bank credit the amount of an unauthorised electronic transaction notified by a customer?", "test_unseen"),
          srow("u2", "What is a Legal Entity Identifier?", "test_unseen")]  # fmt: skip
VAL = [srow("v1", "Who appoints the Principal Officer under PMLA rules?", "val"),
       srow("v2", "Who appoints the Principal Officer under PMLA rules ?", "val")]  # fmt: skip
UNANS = [{"id": "un1", "question": "What does the 2023 Quantum KYC Direction require?", "why_unanswerable": "No such direction.",
          "regulation_area": "KYC"}]  # fmt: skip
GENERAL = [
    {"id": "g1", "question": "What is the capital of Australia?", "answer": "Canberra", "topic": "geography"}
]
GENERAL_TRAIN = [
    {"id": "gt1", "question": "Which metal is liquid at room temperature?", "answer": "Mercury.", "topic": "science"},
    # the general eval probe g1, verbatim: a leak, removed
    {"id": "gt2", "question": "What is the capital of Australia?", "answer": "Canberra.", "topic": "geography"},
]  # fmt: skip
ABSTAIN = "I am not aware of any such RBI direction, so I cannot answer."
ABSTENTION_TRAIN = [
    {"id": "n1", "question": "What does the 2021 Lunar KYC Circular require of payment banks?", "answer": ABSTAIN,
     "regulation_area": "KYC"},
    # near-copy of the unanswerable eval question un1: a leak, removed
    {"id": "n2", "question": "What does the 2023 Quantum KYC Direction require of banks?", "answer": ABSTAIN,
     "regulation_area": "KYC"},
]  # fmt: skip


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_jsonl(P.REPHRASE_TRAIN, TRAIN)
    write_jsonl(P.REPHRASE_TEST_PARA, PARA)
    write_jsonl(P.REPHRASE_VAL_PARA, VAL_PARA)
    write_jsonl(P.SPLIT_VAL, VAL)
    write_jsonl(P.SPLIT_TEST_UNSEEN, UNSEEN)
    write_jsonl(P.RAW_UNANSWERABLE, UNANS)
    write_jsonl(P.RAW_GENERAL, GENERAL)
    write_jsonl(P.RAW_ABSTENTION_TRAIN, ABSTENTION_TRAIN)
    write_jsonl(P.RAW_GENERAL_TRAIN, GENERAL_TRAIN)
    return tmp_path


def test_clean_stage(workdir):
    report = run(compose(["clean.max_train_removed_frac=0.5"]))
    train = read_jsonl(P.CLEAN_TRAIN)
    ids = [r["row_id"] for r in train]
    assert ids == ["a:v0", "a:v1", "b:v0", "c:v0", "p:v0", "p:v1", "e:v0", "f:v0", "g:v0"]
    assert train[2]["question"] == "Can a customer with PAN <IN_PAN> open an account?".replace(
        "account?", "account online?"
    )
    untouched = {r["row_id"]: r for r in TRAIN}
    assert all(r == untouched[r["row_id"]] for r in train if r["row_id"] != "b:v0")

    removed = {(r["split"], r["id"]): r for r in read_jsonl(P.CLEAN_REMOVED)}
    assert (
        removed[("train", "a:v2")]["reason"] == "exact_dup"
        and removed[("train", "a:v2")]["detail"]["dup_of"] == "a:v1"
    )
    assert removed[("train", "d:v0")]["reason"] == "contamination"
    assert removed[("train", "d:v1")]["reason"] == "contamination"
    assert removed[("val", "v2:v0")]["reason"] == "exact_dup"
    assert removed[("abstention_train", "n2:v0")]["reason"] == "contamination"
    assert removed[("general_train", "gt2:v0")]["reason"] == "contamination"
    assert len(removed) == 6
    [gen_train] = read_jsonl(P.CLEAN_GENERAL_TRAIN)
    assert gen_train["row_id"] == "gt1:v0" and gen_train["regulation_area"] == "general"
    [neg] = read_jsonl(P.CLEAN_ABSTENTION_TRAIN)
    assert neg["row_id"] == "n1:v0" and neg["answer"] == ABSTAIN and neg["variant_idx"] == 0

    cont = read_json(P.CONTAMINATION)
    assert cont["contaminated_train_rows_removed"] == 2
    assert {h["test_item_id"] for h in cont["hits"] if h["contamination"]} == {"u1:v0"}
    # the para_eval source's own training rows resemble its held-out rephrasing: reported, kept
    same = [h for h in cont["hits"] if h["same_source"]]
    assert (
        same
        and {h["train_row_id"] for h in same} <= {"p:v0", "p:v1"}
        and not any(h["contamination"] for h in same)
    )

    for s in P.EVAL_SETS:
        items = read_jsonl(P.eval_set_path(s))
        assert items and all(EvalItem.model_validate(i).eval_set == s for i in items)
    [un] = read_jsonl(P.eval_set_path("unanswerable"))
    assert un["reference"] is None and un["category"] == "unanswerable" and un["source_id"] == "un1"
    [gen] = read_jsonl(P.eval_set_path("general"))
    assert gen["regulation_area"] == "general" and gen["category"] == "geography"
    [para] = read_jsonl(P.eval_set_path("test_paraphrase"))
    assert para["item_id"] == "p:para" and para["reference"] == PARA[0]["answer"]
    # test_trained: the surviving originals of the trained_eval sources, verbatim; d's was removed
    trained = read_jsonl(P.eval_set_path("test_trained"))
    assert [(i["item_id"], i["question"]) for i in trained] == [
        ("c:v0", TRAIN[4]["question"]),
        ("p:v0", TRAIN[7]["question"]),
    ]
    assert report["splits"]["test_trained"]["sources_without_original"] == ["d"]
    [vp] = read_jsonl(P.CLEAN_VAL_PARA)
    assert (
        vp["row_id"] == "e:valpara" and vp["variant_idx"] == 0 and vp["question"] == VAL_PARA[0]["question"]
    )
    assert cont["test_questions"]["val_paraphrase"] == 1
    assert cont["abstention_train"]["contaminated_train_rows_removed"] == 1
    assert {h["test_item_id"] for h in cont["abstention_train"]["hits"] if h["contamination"]} == {"un1"}
    assert report["splits"]["abstention_train"]["out"] == 1

    assert report["splits"]["train"] == {"in": 12, "out": 9, "removed": {"contamination": 2, "exact_dup": 1},
                                         "pii": report["splits"]["train"]["pii"], "dedup": {"exact_dup": 1}}  # fmt: skip
    assert report["splits"]["train"]["pii"]["findings"] == {"IN_PAN:redact": 1}
    assert read_json(P.CLEAN_MANIFEST)["stage"] == "clean"


def test_shrink_bound_fails_with_evidence(workdir):
    with pytest.raises(InputError, match="max_train_removed_frac"):
        run(compose(["clean.max_train_removed_frac=0.1"]))
    assert read_json(P.CLEAN_REPORT)["ok"] is False
    assert not P.CLEAN_TRAIN.exists()


def test_nothing_survives_fails(workdir):
    write_jsonl(P.REPHRASE_TRAIN, [trow("d", 0, UNSEEN[0]["question"])])
    with pytest.raises(InputError, match="no training rows survived"):
        run(compose(["clean.max_train_removed_frac=1.0"]))


def test_invalid_rows_are_quarantined_not_dropped(workdir):
    write_jsonl(P.REPHRASE_TRAIN, [*TRAIN, {**TRAIN[0], "row_id": "bad:v0", "estimated_difficulty": 42}])
    report = run(compose(["clean.max_train_removed_frac=0.5"]))
    bad = [r for r in read_jsonl(P.CLEAN_REMOVED) if r["reason"] == "invalid_row"]
    assert len(bad) == 1 and bad[0]["row"]["row_id"] == "bad:v0"
    assert report["splits"]["train"]["in"] == 13 and report["splits"]["train"]["removed"]["invalid_row"] == 1
