"""Small synthetic eval sets and generations for the judge tests, written under a temp project root."""

from __future__ import annotations

import json
from pathlib import Path

from rbiqa import paths as P
from rbiqa.schemas import EvalItem, Generation

FACTS = [
    (
        "What is the limit on collateral-free loans to MSEs?",
        "Banks must not take collateral for loans up to Rs 10 lakh to micro and small enterprises.",
    ),
    (
        "Within how many days must a bank resolve an ATM failed-transaction complaint?",
        "The bank must reverse the amount within 5 days (T+5) of the failed ATM transaction.",
    ),
    (
        "Which bank is the lead bank for the Noklak district?",
        "The State Bank of India has the lead bank responsibility for the Noklak district.",
    ),
    (
        "What is the cap on penal charges for loans?",
        "Penal charges are capped at 2 per cent per annum above the applicable rate.",
    ),
    ("When did the V-CIP directions take effect?", "The V-CIP directions took effect on January 9, 2020."),
    (
        "Who approves a change of name of a cooperative bank?",
        "A cooperative bank needs a written certificate of approval from the Reserve Bank of India.",
    ),
]


def eval_items(eval_set: str, n: int, prefix: str = "it") -> list[EvalItem]:
    items = []
    for i in range(n):
        q, ref = FACTS[i % len(FACTS)]
        items.append(
            EvalItem(
                item_id=f"{prefix}{i:03d}",
                source_id=f"src{i % 4}",
                eval_set=eval_set,
                question=f"{q} [[{prefix}{i:03d}]]",
                reference=None if eval_set == "unanswerable" else ref,
                regulation_area="Testing",
                category="fact-based",
                difficulty=3,
            )
        )
    return items


def generation(item: EvalItem, arm: str, answer: str | None, error: str | None = None) -> Generation:
    return Generation(
        item_id=item.item_id,
        source_id=item.source_id,
        eval_set=item.eval_set,
        arm=arm,
        question=item.question,
        answer=answer,
        error=error,
        model_id="synthetic",
    )


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def write_inputs(root: Path, arm: str, eval_set: str, items: list[EvalItem], gens: list[Generation]) -> None:
    write_jsonl(root / P.eval_set_path(eval_set), [i.model_dump() for i in items])
    write_jsonl(root / P.generations(arm, eval_set), [g.model_dump() for g in gens])
