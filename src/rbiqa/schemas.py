"""Row schemas shared by the stages (pydantic v2).

Validation happens at every stage boundary that reads external or hand-written data; a row that fails
is quarantined with its reason, never silently dropped.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from rbiqa import paths as P

Category = Literal["fact-based", "reasoning"]


def _known_eval_set(v: str) -> str:
    if v not in P.ITEM_SETS:
        raise ValueError(f"unknown eval set {v!r}; known: {', '.join(P.ITEM_SETS)}")
    return v


EvalSet = Annotated[str, AfterValidator(_known_eval_set)]  # one of rbiqa.paths.ITEM_SETS


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _non_blank(v: str) -> str:
    if not v or not v.strip():
        raise ValueError("must not be empty or whitespace")
    return v


class QARecord(_Strict):
    """One source question with its reference answer and metadata."""

    id: str = Field(min_length=1, max_length=128)
    question: str = Field(min_length=5)
    answer: str = Field(min_length=1)
    regulation_area: str = Field(min_length=1)
    applicable_to: str = Field(min_length=1)
    category: Category
    estimated_difficulty: int = Field(ge=1, le=7)
    source: str = Field(min_length=1)
    as_of: int = Field(ge=1934, le=2100)  # RBI was established in 1935 (Act of 1934)

    _nb = field_validator("id", "question", "answer", "regulation_area", "applicable_to", "source")(
        _non_blank
    )


class UnanswerableRecord(_Strict):
    """A question about a rule or circular that does not exist; the right answer is to abstain."""

    id: str = Field(min_length=1)
    question: str = Field(min_length=5)
    why_unanswerable: str = Field(min_length=1)
    regulation_area: str = Field(min_length=1)


class AbstentionTrainRecord(_Strict):
    """A training example of abstaining: a question about a rule or circular that does not exist, and a
    short honest answer that says so (never an eval item; the split keeps them apart)."""

    id: str = Field(min_length=1)
    question: str = Field(min_length=5)
    answer: str = Field(min_length=1)
    regulation_area: str = Field(min_length=1)


class GeneralRecord(_Strict):
    """General-knowledge probe for catastrophic forgetting."""

    id: str = Field(min_length=1)
    question: str = Field(min_length=3)
    answer: str = Field(min_length=1)
    topic: str = Field(min_length=1)


class EvalItem(_Strict):
    """One item of an evaluation set, the unit that is generated for and judged."""

    item_id: str
    source_id: str  # bootstrap cluster: all phrasings of one source question share it
    eval_set: EvalSet
    question: str
    reference: str | None  # None for unanswerable (the correct behaviour is to abstain)
    regulation_area: str
    category: str
    difficulty: int | None
    applicable_to: str | None = None


class Generation(_Strict):
    item_id: str
    source_id: str
    eval_set: EvalSet
    arm: str
    question: str
    answer: str | None  # None when generation failed: then `error` says why
    error: str | None = None
    model_id: str
    n_prompt_tokens: int | None = None
    n_new_tokens: int | None = None
    seconds: float | None = None
    context_ids: list[str] | None = None  # few-shot example / retrieved passage row ids (fewshot, rag arms)
    # teacher-forced loss of the reference answer under this arm's prompt (nats per answer token), for
    # the sets in generate.reference_loss_sets: a check of learning that does not depend on the judge
    reference_nll: float | None = None
    reference_tokens: int | None = None


class Judgment(_Strict):
    item_id: str
    source_id: str
    eval_set: EvalSet
    arm: str
    score: Literal[0, 1] | None  # None = missing (failed judgment); never counted as 0
    status: Literal["ok", "missing"]
    error: str | None = None
    reasoning: str | None = None
    p_correct: float | None = None  # the reference judge's calibrated probability
    # Answerable items: did the answer abstain ("I don't know of it")? The offline abstention detector's
    # verdict (rbiqa.judge.reference.abstention), whatever the judge; None on unanswerable items (the score
    # is the abstention there) and where there is no answer. Over-abstention is its rate.
    abstained: bool | None = None
    judge_backend: str
    judge_model: str
    prompt_hash: str | None = None
