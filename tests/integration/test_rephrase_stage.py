"""The rephrase stage end to end with the real google-genai client against the local Gemini stub:
filters + retry rounds, the held-out rephrasing, shortfall reporting, failures recorded, caching."""

from __future__ import annotations

import json
import re
from collections import defaultdict

import pytest

from rbiqa import paths as P
from rbiqa.config import compose
from rbiqa.io import read_json, read_jsonl, write_jsonl
from rbiqa.rephrase.stage import run
from tests.stubs.gemini_stub import GeminiStub

BASE = {"regulation_area": "Customer service", "applicable_to": "Banks", "category": "fact-based",
        "estimated_difficulty": 2, "source": "test", "as_of": 2024, "split": "train"}  # fmt: skip
SOURCES = {
    "s1": ("Can a bank open a savings account for a minor?", True, [
        "Is a bank allowed to open a savings account for a minor?",
        "May a minor have a savings account opened by a bank?",
        "Are banks permitted to open savings accounts for minors?",
        "Can a minor get a savings account opened at a bank?",
    ]),
    "s2": ("How many days does a bank have to resolve a complaint about a failed ATM withdrawal?", False, [
        "Within how many days must a bank settle a complaint about a failed ATM withdrawal?",
        "For a failed ATM withdrawal, how many days may a bank take to settle the complaint?",
        "How long, in days, can a bank take over a complaint about a failed ATM withdrawal?",
    ]),
    "s3": ("What documents are needed to open a bank account?", False, []),  # the model only answers
    "s4": ("Which body regulates payment systems in the country?", False, None),  # the API always fails
}  # fmt: skip
ANSWER = {"s3": "Officially valid documents such as a passport, driving licence or voter identity card."}


def question_key(prompt: str) -> str:
    """A rephrase request's item: the question it asks about (the prompt's last line)."""
    return re.search(r"^Question: (.+)$", prompt, re.M).group(1)


def make_responder():
    served = defaultdict(int)
    by_question = {q: sid for sid, (q, _, _) in SOURCES.items()}

    def responder(prompt: str, body: dict):
        question = re.search(r"^Question: (.+)$", prompt, re.M).group(1)
        n = int(re.search(r"in (\d+) different ways", prompt).group(1))
        sid = by_question[question]
        goods = SOURCES[sid][2]
        if sid == "s3":
            return {"rephrasings": [ANSWER["s3"], question, "Passport and voter card?"][:n]}
        # first call: one bad candidate (the original, copied) then good ones; later calls: the rest
        start = served[sid]
        out = (([question] if start == 0 else []) + goods[start:])[:n]
        served[sid] += sum(1 for x in out if x != question)
        return {"rephrasings": out or [question]}

    return responder


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GOOGLE_API_KEY", "stub-secret-key-0123456789")
    rows = [
        {
            "id": sid,
            "question": q,
            "answer": ANSWER.get(sid, "Answer text for " + sid),
            "para_eval": para,
            **BASE,
        }
        for sid, (q, para, _) in SOURCES.items()
    ]
    write_jsonl(P.SPLIT_TRAIN, rows)
    return tmp_path


def cfg_for(stub):
    return compose([
        "rephrase=gemini", f"rephrase.base_url={stub.url}", "rephrase.timeout_s=5", "rephrase.k=3",
        "rephrase.max_attempts=3", "rephrase.concurrency=3", "rephrase.retry.max_attempts=2",
        "rephrase.retry.initial_s=0.01", "rephrase.retry.max_s=0.02", "rephrase.retry.jitter_s=0",
    ])  # fmt: skip


def test_stage_with_gemini_stub(workdir):
    with GeminiStub(responder=make_responder(), item_key=question_key) as stub:
        stub.default_fault = lambda prompt, n: "500" if "Which body regulates" in prompt else "ok"
        stub.script(SOURCES["s2"][0], ["429", "malformed"])
        report = run(cfg_for(stub))
        first_calls = stub.total

    train = read_jsonl(P.REPHRASE_TRAIN)
    by_src = defaultdict(list)
    for r in train:
        by_src[r["source_id"]].append(r)
    # every source keeps its original as variant 0, exactly once
    assert all(
        rows[0]["variant_idx"] == 0 and rows[0]["question"] == SOURCES[s][0] for s, rows in by_src.items()
    )
    assert sorted(by_src) == ["s1", "s2", "s3", "s4"]
    assert [r["variant_idx"] for r in by_src["s2"]] == [0, 1, 2, 3]
    assert {r["question"] for r in by_src["s2"][1:]} == set(SOURCES["s2"][2])
    assert [r["variant_idx"] for r in by_src["s3"]] == [0] and [r["variant_idx"] for r in by_src["s4"]] == [0]
    assert set(train[0]) == {"row_id", "source_id", "variant_idx", "question", "answer", "regulation_area",
                             "applicable_to", "category", "estimated_difficulty", "trained_eval"}  # fmt: skip

    # s1 is a para_eval source: k+1 = 4 accepted, one held out, never in training
    [para] = read_jsonl(P.REPHRASE_TEST_PARA)
    assert para["source_id"] == "s1" and para["question"] in SOURCES["s1"][2]
    s1_train = [r["question"] for r in by_src["s1"]]
    assert len(s1_train) == 4 and para["question"] not in s1_train
    assert para["answer"] == "Answer text for s1" and para["original_question"] == SOURCES["s1"][0]

    rejected = read_jsonl(P.REPHRASE_REJECTED)
    reasons = defaultdict(set)
    for r in rejected:
        reasons[r["source_id"]].update(r["reasons"])
    assert "same_as_original" in reasons["s1"] and "same_as_original" in reasons["s2"]
    assert {"answer_leak", "same_as_original"} <= reasons["s3"]
    assert reasons["s4"] == {"call_failed"}
    assert all(
        r["error"] and "stub-secret" not in r["error"] for r in rejected if r["reasons"] == ["call_failed"]
    )

    assert report["shortfall"]["sources_short"] == 2 and set(report["shortfall"]["source_ids"]) == {
        "s3",
        "s4",
    }
    assert report["yield"]["train_rephrasings_per_source"] == {"0": 2, "1": 0, "2": 0, "3": 2}
    assert report["para_eval"] == {"sources": 1, "with_heldout": 1, "without_heldout": []}
    # s4 failed in each of the 3 rounds; s2's first call used up its 2 attempts (429, malformed JSON)
    # and was asked again in the next round
    assert report["rejections"]["by_reason"]["call_failed"] == 4
    assert sorted(r["source_id"] for r in rejected if r["reasons"] == ["call_failed"]) == [
        "s2",
        "s4",
        "s4",
        "s4",
    ]
    assert report["calls"]["model_calls"] == first_calls
    assert report["calls"]["api"]["errors"]["http_500"] == 6  # 3 rounds x 2 attempts for s4
    manifest = read_json(P.REPHRASE_MANIFEST)
    assert manifest["extra"]["backend"] == "gemini" and manifest["extra"]["model_id"] == "gemini-2.5-flash"
    assert len(manifest["extra"]["prompt_sha256"]) == 64 and manifest["extra"]["k"] == 3
    assert "stub-secret" not in json.dumps(manifest) and "stub-secret" not in json.dumps(report)

    # rerun: every successful call comes from the cache; only calls that never succeeded are made again
    # (s4: 3 rounds x 2 attempts; s2: its failed first call, which now succeeds, so s2's later rounds ask
    # for different counts than before). Sources whose calls all succeeded (s1, s3) are not asked again.
    s1_before = [r for r in read_jsonl(P.REPHRASE_TRAIN) if r["source_id"] == "s1"]
    with GeminiStub(responder=make_responder()) as stub:
        stub.default_fault = lambda prompt, n: "500" if "Which body regulates" in prompt else "ok"
        run(cfg_for(stub))
        asked = [r.prompt.splitlines()[-1].removeprefix("Question: ") for r in stub.requests]
    assert asked.count(SOURCES["s4"][0]) == 6 and SOURCES["s2"][0] in asked
    assert SOURCES["s1"][0] not in asked and SOURCES["s3"][0] not in asked
    assert [r for r in read_jsonl(P.REPHRASE_TRAIN) if r["source_id"] == "s1"] == s1_before
    assert read_jsonl(P.REPHRASE_TEST_PARA) == [para]


def test_zero_calls_when_everything_is_cached(workdir):
    rows = [r for r in read_jsonl(P.SPLIT_TRAIN) if r["id"] in ("s1", "s2")]
    write_jsonl(P.SPLIT_TRAIN, rows)
    with GeminiStub(responder=make_responder()) as stub:
        run(cfg_for(stub))
        assert stub.total > 0
    with GeminiStub(responder=make_responder()) as stub:
        report = run(cfg_for(stub))
        assert stub.total == 0
    assert report["calls"]["model_calls"] == 0 and report["calls"]["cached_calls"] > 0


def test_bad_split_rows_fail_loudly(workdir):
    rows = read_jsonl(P.SPLIT_TRAIN)
    rows[1]["estimated_difficulty"] = 99
    write_jsonl(P.SPLIT_TRAIN, rows)
    with GeminiStub(responder=make_responder()) as stub, pytest.raises(ValueError, match="invalid rows"):
        run(cfg_for(stub))


def test_stage_with_shipped_paraphrases(tmp_path, monkeypatch):
    """The shipped backend through the same filters: the designated held-out wording goes to
    test_paraphrase (para_eval) or val_paraphrase (val_para), a rejected paraphrase is counted, and the
    manifest names the file, not a model."""
    monkeypatch.chdir(tmp_path)
    q = {
        "t1": "What is the minimum CRR that scheduled banks must keep?",
        "t2": "Which documents can be used for KYC of a minor?",
        "t3": "How long may a small account stay open?",
    }
    shipped = [
        {"id": "t1", "train": ["For scheduled banks, what is the lowest CRR allowed?",
                               "What CRR floor applies to scheduled banks?",
                               "Scheduled banks must hold at least what CRR?"],
         "heldout": "What is the smallest CRR a scheduled bank may maintain?"},
        {"id": "t2", "train": ["For the KYC of a minor, which documents are accepted?",
                               "Which papers does a bank accept for a minor's KYC?",
                               "What documents are valid for the KYC of a minor?"],
         "heldout": "Which documents may a bank rely on for KYC of minors?"},
        # the second one copies a number from the answer: an answer leak the filters reject
        {"id": "t3", "train": ["For how long can a small account remain open?",
                               "For how long beyond 12 months can a small account be kept open?",
                               "What is the period a small account may be kept open?"],
         "heldout": "What is the maximum life of a small account?"},
    ]  # fmt: skip
    path = tmp_path / "paraphrases.jsonl"
    write_jsonl(path, shipped)
    rows = [
        {"id": s, "question": q[s], "answer": "It is 12 months, extendable by 12 months." if s == "t3" else "Ans.",
         "para_eval": s == "t1", "val_para": s == "t2", "trained_eval": s == "t1", **BASE}
        for s in q
    ]  # fmt: skip
    write_jsonl(P.SPLIT_TRAIN, rows)
    report = run(compose(["rephrase=shipped", f"rephrase.path={path.as_posix()}", "rephrase.k=3"]))

    [para] = read_jsonl(P.REPHRASE_TEST_PARA)
    [vpara] = read_jsonl(P.REPHRASE_VAL_PARA)
    assert (para["source_id"], para["question"], para["row_id"]) == ("t1", shipped[0]["heldout"], "t1:para")
    assert (vpara["source_id"], vpara["question"], vpara["row_id"]) == (
        "t2",
        shipped[1]["heldout"],
        "t2:valpara",
    )
    train = read_jsonl(P.REPHRASE_TRAIN)
    by = defaultdict(list)
    for r in train:
        by[r["source_id"]].append(r["question"])
    assert by["t1"] == [q["t1"], *shipped[0]["train"]] and shipped[0]["heldout"] not in by["t1"]
    assert by["t3"] == [q["t3"], shipped[2]["train"][0], shipped[2]["train"][2]]
    assert all(r["trained_eval"] == (r["source_id"] == "t1") for r in train)
    [rej] = read_jsonl(P.REPHRASE_REJECTED)
    assert rej["source_id"] == "t3" and "answer_leak" in rej["reasons"]
    assert report["rejections"]["candidates_rejected"] == 1 and report["shortfall"]["source_ids"] == ["t3"]
    assert report["heldout"] == {"test_paraphrase": 1, "val_paraphrase": 1, "designated_by_backend": 2}
    manifest = read_json(P.REPHRASE_MANIFEST)
    assert manifest["extra"]["backend"] == "shipped" and "no model" in manifest["extra"]["model_id"]
    assert path.as_posix() in manifest["inputs"] or any(
        k.endswith("paraphrases.jsonl") for k in manifest["inputs"]
    )
