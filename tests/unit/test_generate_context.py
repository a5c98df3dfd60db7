"""Few-shot example selection and BM25 retrieval: the two ways a prompting arm adds training data."""

from __future__ import annotations

import random

import pytest

from rbiqa.generate.fewshot import FewShotSelector
from rbiqa.generate.prompts import fewshot_messages, rag_messages
from rbiqa.generate.retrieval import BM25Retriever
from rbiqa.io import InputError


def pool(n_sources: int = 12) -> list[dict]:
    return [
        {"row_id": f"r{s:02d}", "source_id": f"s{s:02d}", "question": f"q{s}", "answer": f"a{s}"}
        for s in range(n_sources)
    ]


def test_fewshot_never_uses_the_items_own_source():
    sel = FewShotSelector(pool(), k=3, seed=7)
    for s in range(12):
        chosen = sel.select(f"s{s:02d}")
        assert len(chosen) == 3
        assert f"s{s:02d}" not in {r["source_id"] for r in chosen}
        assert len({r["source_id"] for r in chosen}) == 3


def test_fewshot_items_share_examples_unless_their_source_is_among_them():
    sel = FewShotSelector(pool(), k=3, seed=7)
    default = sel.select("not-in-train")
    own = default[0]["source_id"]
    swapped = sel.select(own)
    assert [r["row_id"] for r in swapped[:2]] == [r["row_id"] for r in default[1:]]
    assert swapped[2]["row_id"] == sel.order[3]["row_id"]


def test_fewshot_is_deterministic_in_seed_and_independent_of_row_order():
    rows = pool(30)
    shuffled = rows[:]
    random.Random(0).shuffle(shuffled)
    a = [r["row_id"] for r in FewShotSelector(rows, 4, seed=1).select("s00")]
    b = [r["row_id"] for r in FewShotSelector(shuffled, 4, seed=1).select("s00")]
    assert a == b
    others = {tuple(r["row_id"] for r in FewShotSelector(rows, 4, seed=s).select("s00")) for s in range(2, 8)}
    assert len(others | {tuple(a)}) > 1, "the seed must change the choice"


def test_fewshot_needs_enough_sources():
    with pytest.raises(InputError, match="distinct training sources"):
        FewShotSelector(pool(3), k=3, seed=0)


def test_fewshot_messages_are_prior_turns():
    msgs = fewshot_messages("SYS", [{"question": "q1", "answer": "a1"}], "Q?")
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert msgs[0]["content"] == "SYS" and msgs[-1]["content"] == "Q?"


FILLER = [
    (
        "What is the statutory liquidity ratio?",
        "Banks must hold liquid assets such as government securities.",
    ),
    ("Who regulates payment systems in India?", "The RBI under the Payment and Settlement Systems Act."),
    ("What is the priority sector lending target?", "Forty percent of adjusted net bank credit."),
    ("How are NBFCs classified under scale based regulation?", "Base, middle, upper and top layers."),
    ("What is the limit for small accounts?", "Aggregate credits of one lakh rupees in a year."),
    ("When must banks report frauds?", "Within a week of detection to the RBI."),
]


def corpus() -> list[dict]:
    docs = [
        {"row_id": f"f{i}", "source_id": f"f{i}", "question": q, "answer": a}
        for i, (q, a) in enumerate(FILLER)
    ]
    planted = {
        "row_id": "planted",
        "source_id": "p",
        "question": "What loan to value ratio applies to gold loans?",
        "answer": "Lenders may not exceed a 75 percent loan-to-value ratio on jewellery pledged as collateral.",
    }
    return docs[:3] + [planted] + docs[3:]


def test_bm25_returns_the_planted_passage_first():
    r = BM25Retriever(corpus(), stemmer="english", stopwords="en")
    hits = r.search("Maximum LTV for loans against gold jewellery?", 3)
    assert hits[0].row_id == "planted"
    assert hits[0].score > 0
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_bm25_stems_query_terms():
    r = BM25Retriever(corpus(), stemmer="english", stopwords="en")
    assert r.search("pledging jewelleries", 1)[0].row_id == "planted"
    plain = BM25Retriever(corpus(), stemmer=None, stopwords="en")
    assert plain.search("pledging", 1) == []


def test_bm25_no_match_and_small_corpus():
    r = BM25Retriever(corpus())
    assert r.search("zzzz qqqq", 3) == []
    assert len(r.search("loan ratio banks", 50)) <= len(corpus())


def test_rag_prompt_contains_passages_in_rank_order():
    docs = corpus()
    msgs = rag_messages(
        "SYS",
        docs[:2],
        "Q?",
        template="{context}\n--\n{question}",
        passage_template="[{rank}] {question} {answer}",
        empty_context="NONE",
        max_passage_chars=20,
    )
    user = msgs[1]["content"]
    assert user.index("[1] " + docs[0]["question"]) < user.index("[2] " + docs[1]["question"])
    assert user.endswith("--\nQ?") and "…" in user
    empty = rag_messages(
        "SYS",
        [],
        "Q?",
        template="{context}|{question}",
        passage_template="",
        empty_context="NONE",
        max_passage_chars=None,
    )
    assert empty[1]["content"] == "NONE|Q?"
