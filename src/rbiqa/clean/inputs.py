"""Loading and validating the clean stage's inputs, and turning them into EvalItems.

A row that fails validation is not dropped: it goes to removed.jsonl with reason `invalid_row` and the
validation message, and is counted in clean_report.json.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rbiqa.io import read_jsonl
from rbiqa.schemas import Category, EvalItem, GeneralRecord, QARecord, UnanswerableRecord


class TrainRow(BaseModel):
    """A row of rephrase's train_aug.jsonl (and of data/processed/train.jsonl, val.jsonl)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    row_id: str = Field(min_length=1)
    source_id: str = Field(min_length=1)
    variant_idx: int = Field(ge=0)
    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    regulation_area: str
    applicable_to: str
    category: Category
    estimated_difficulty: int = Field(ge=1, le=7)
    trained_eval: bool = False  # its source is asked verbatim in test_trained (never a few-shot example)


class ParaRow(BaseModel):
    """A row of rephrase's test_paraphrase.jsonl or val_paraphrase.jsonl: the held-out rephrasing of a
    trained source."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    row_id: str = Field(min_length=1)
    source_id: str = Field(min_length=1)
    question: str = Field(min_length=1)
    original_question: str
    answer: str = Field(min_length=1)
    regulation_area: str
    applicable_to: str
    category: Category
    estimated_difficulty: int = Field(ge=1, le=7)


class SplitRow(QARecord):
    split: str
    para_eval: bool
    val_para: bool = False
    trained_eval: bool = False


def load_rows(path: Path, model: type[BaseModel], what: str) -> tuple[list[dict], list[dict]]:
    """(valid rows as dicts, invalid rows as removal records)."""
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing ({what}); run the upstream stage first")
    ok, bad = [], []
    for i, raw in enumerate(read_jsonl(path), 1):
        try:
            ok.append(model.model_validate(raw).model_dump())
        except ValidationError as e:
            err = e.errors()[0]
            bad.append({"split": what, "reason": "invalid_row", "detail": f"{path}:{i}: {err['loc']}: {err['msg']}",
                        "row": raw})  # fmt: skip
    return ok, bad


def para_row_to_train(row: dict[str, Any]) -> dict[str, Any]:
    """A val_paraphrase row in the train row shape (its one wording), for the train stage's eval loss."""
    return {
        "row_id": row["row_id"],
        "source_id": row["source_id"],
        "variant_idx": 0,
        **{k: row[k] for k in ("question", "answer", "regulation_area", "applicable_to", "category")},
        "estimated_difficulty": row["estimated_difficulty"],
    }


def split_row_to_train(row: dict[str, Any]) -> dict[str, Any]:
    """val/test_unseen rows come from the split as QARecords: give them the train row shape."""
    return {
        "row_id": f"{row['id']}:v0",
        "source_id": row["id"],
        "variant_idx": 0,
        **{k: row[k] for k in ("question", "answer", "regulation_area", "applicable_to", "category")},
        "estimated_difficulty": row["estimated_difficulty"],
    }


def pool_row_to_train(row: dict[str, Any], regulation_area: str, category: str) -> dict[str, Any]:
    """A row of a training pool mixed in by train.mix (abstention examples, general-knowledge QA) in the
    train row shape: one wording, no difficulty."""
    return {
        "row_id": f"{row['id']}:v0",
        "source_id": row["id"],
        "variant_idx": 0,
        "question": row["question"],
        "answer": row["answer"],
        "regulation_area": regulation_area,
        "category": category,
    }


def to_eval_item(eval_set: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def qa(row: dict[str, Any]) -> dict[str, Any]:
        return EvalItem(
            item_id=row["row_id"],
            source_id=row["source_id"],
            eval_set=eval_set,
            question=row["question"],
            reference=row["answer"],
            regulation_area=row["regulation_area"],
            category=row["category"],
            difficulty=row["estimated_difficulty"],
            applicable_to=row["applicable_to"],
        ).model_dump()

    def unanswerable(row: dict[str, Any]) -> dict[str, Any]:
        return EvalItem(
            item_id=row["id"],
            source_id=row["id"],
            eval_set="unanswerable",
            question=row["question"],
            reference=None,
            regulation_area=row["regulation_area"],
            category="unanswerable",
            difficulty=None,
            applicable_to=None,
        ).model_dump()

    def general(row: dict[str, Any]) -> dict[str, Any]:
        return EvalItem(
            item_id=row["id"],
            source_id=row["id"],
            eval_set="general",
            question=row["question"],
            reference=row["answer"],
            regulation_area="general",
            category=row["topic"],
            difficulty=None,
            applicable_to=None,
        ).model_dump()

    return {"unanswerable": unanswerable, "general": general}.get(eval_set, qa)


RAW_MODELS = {"unanswerable": UnanswerableRecord, "general": GeneralRecord}
