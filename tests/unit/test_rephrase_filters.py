"""Paraphrase quality filters: each rejection reason fires on a crafted bad candidate, good ones pass."""

import pytest

from rbiqa.rephrase.filters import REASONS, FilterConfig, ParaphraseFilter, extract_candidate
from rbiqa.rephrase.stage import choose_heldout

ORIG = "What is the Cash Reserve Ratio (CRR) that scheduled banks must maintain with RBI since 31 March 2024?"
ANSWER = "Scheduled banks must keep 4% of their NDTL as cash with RBI; the ratio was cut on 31 March 2024."


@pytest.fixture(scope="module")
def filt():
    return ParaphraseFilter(
        FilterConfig(
            entities=("Master Direction",),
            entity_aliases={"RBI": ("Reserve Bank of India", "Reserve Bank")},
        )
    )


GOOD = [
    "Since 31 March 2024, what CRR must scheduled banks keep with the RBI?",
    "Since 31 March 2024, how much must scheduled banks hold with the Reserve Bank of India as CRR?",
]


@pytest.mark.parametrize("cand", GOOD)
def test_good_paraphrases_pass(filt, cand):
    assert filt.check(cand, ORIG, ANSWER) == []


@pytest.mark.parametrize(
    ("cand", "reason"),
    [
        ("", "empty"),
        ("CRR 2024?", "too_short"),
        (ORIG + " " + ORIG, "too_long"),
        (ORIG.upper().replace("?", " ?"), "same_as_original"),
        (
            "What is the Cash Reserve Ratio (CRR) that scheduled banks must maintain with RBI since 31 March 2024 ?!",
            "same_as_original",
        ),
        (
            "What is the Cash Reserve Ratio (CRR) that scheduled banks should maintain with RBI since 31 March 2024?",
            "near_original",
        ),
        ("Since 31 March 2024, what CRR must the scheduled banks keep with the RBI?", "near_accepted"),
        ("Since March 2024, what CRR must scheduled banks keep with the RBI?", "lost_number"),
        ("Since 31 2024, what CRR must scheduled banks keep with the RBI?", "lost_date"),
        (
            "Since 31 March 2024, what cash ratio must scheduled banks keep with the central bank?",
            "lost_entity",
        ),
        (
            "Since 31 March 2024, what CRR must scheduled banks keep with the RBI within 15 days?",
            "added_number",
        ),
        ("Since 31 March 2024, must scheduled banks keep 4% of NDTL as CRR with the RBI?", "answer_leak"),
        ("Since 31 March 2024 scheduled banks keep a CRR with the RBI.", "not_question"),
        ("Yes, since 31 March 2024 scheduled banks must keep a CRR with the RBI?", "not_question"),
    ],
)
def test_each_reason_fires(filt, cand, reason):
    accepted = [GOOD[0]] if reason == "near_accepted" else []
    reasons = filt.check(cand, ORIG, ANSWER, accepted)
    assert reason in reasons, reasons
    assert set(reasons) <= set(REASONS)


def test_answer_leak_by_content_words(filt):
    orig = "Which documents are needed to open a basic savings account?"
    ans = (
        "Customers need officially valid documents such as passport, driving licence or voter identity card."
    )
    leak = "Which documents, such as passport, driving licence or voter identity card, open a basic savings account?"
    assert "answer_leak" in filt.check(leak, orig, ans)
    assert filt.check("What documents does one need to open a basic savings account?", orig, ans) == []


def test_percent_and_number_words_normalised(filt):
    orig = "Can an NBFC lend more than 75 per cent of the gold value for three months?"
    assert "lost_number" not in filt.check(
        "For 3 months, may an NBFC lend above 75% of the value of gold?", orig
    )
    assert "lost_number" in filt.check("For 3 months, may an NBFC lend above 75 of the value of gold?", orig)


def test_magnitude_words_are_facts(filt):
    orig = "How often must banks report frauds above Rs 1 crore to the RBI?"
    assert "lost_number" in filt.check(
        "How frequently must banks report frauds above Rs 1 billion to the RBI?", orig
    )


def test_acronym_plural_and_initials(filt):
    orig = "Which NBFCs come under the Integrated Ombudsman Scheme?"
    assert filt.check("Which NBFC entities are covered by the Integrated Ombudsman Scheme?", orig) == []
    assert "lost_entity" in filt.check("Which NBFCs are covered by the ombudsman?", orig)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Rephrased question: What is X?\nMore text", "What is X?"),
        ('"What is X?"', "What is X?"),
        ("1. What is X?", "What is X?"),
        ("\n\n  R: What is X?", "What is X?"),
        ("", ""),
    ],
)
def test_extract_candidate(raw, clean):
    assert extract_candidate(raw) == clean


def test_heldout_is_the_most_distinct():
    orig = "What is the CRR for scheduled banks?"
    accepted = [
        "What CRR applies to scheduled banks?",
        "What is the CRR for all scheduled banks?",
        "Which cash reserve requirement must a scheduled bank keep?",
    ]
    assert choose_heldout(orig, accepted) == 2


@pytest.mark.parametrize(
    ("orig", "cand", "changed"),
    [
        ("How did RBI reduce the CRR in December 2024?", "Is RBI reducing the CRR in December 2024?", True),
        (
            "Do education loans qualify as priority sector lending?",
            "How much do education loans qualify as priority sector lending?",
            True,
        ),
        (
            "How did RBI reduce the CRR in December 2024?",
            "In December 2024, in what way did RBI cut the CRR?",
            False,
        ),
        ("Can an NBFC accept demand deposits?", "Is an NBFC allowed to accept demand deposits?", False),
        ("What was the final tranche of the CCB?", "Who decided the final tranche of the CCB?", True),
        ("What was the final tranche of the CCB?", "When was the final tranche of the CCB due?", True),
        ("When did the final CCB tranche apply?", "From what date did the final CCB tranche apply?", False),
    ],
)
def test_question_type_change(filt, orig, cand, changed):
    assert ("question_type_changed" in filt.check(cand, orig)) is changed


def _state(sid, para=False, accepted=0, need=3):
    from rbiqa.rephrase.stage import SourceState

    st = SourceState({"id": sid, "para_eval": para}, need + para)
    st.accepted = [{"question": f"{sid}-{i}"} for i in range(accepted)]
    return st


def test_allocation_is_breadth_first_and_serves_heldouts_first():
    from rbiqa.rephrase.stage import allocate, priority

    todo = [_state("a"), _state("b", accepted=2), _state("p", para=True), _state("c")]
    todo.sort(key=lambda s: priority(s, seed=1))
    assert todo[0].row["id"] == "p" and todo[-1].row["id"] == "b"  # held-out first, best-served last
    wants = {"a": 3, "b": 1, "p": 4, "c": 3}
    assert allocate(todo, wants, None) == wants
    assert allocate(todo, wants, 7) == {"p": 4, "a": 1, "c": 1, "b": 1}
    assert allocate(todo, wants, 6) == {"p": 4, "a": 1, "c": 1, "b": 0}
    assert allocate(todo, wants, 3) == {"p": 3, "a": 0, "c": 0, "b": 0}
    assert sum(allocate(todo, wants, 100).values()) == sum(wants.values())
