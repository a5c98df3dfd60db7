"""The rows of a refine arm's extra round: hard negatives, or as many random rows as their control.

The reference study's next step was a short extra round of training on the items the fine-tuned model
got wrong. Here the items are the mining set (rbiqa.paths.TRAIN_MINING: training rows that are no eval
item), answered by the starting arm's adapter and judged by the study's judge in the mine rule. Only
training rows can be chosen, so no eval item is ever trained on because it was answered wrongly.

- judged_wrong: the mining rows whose judgment scored 0. A missing verdict (failed judge call) is not a
  0: such rows are left out of the choice and counted.
- random: as many rows as judged_wrong picks for the same starting arm, drawn with the train seed from
  every mining row whatever its verdict. With the same steps this separates the mining from the extra
  compute (the round itself).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rbiqa.io import InputError, iter_jsonl
from rbiqa.schemas import EvalItem, Judgment


def judged_scores(items: Sequence[EvalItem], judgments_path: Path) -> dict[str, int | None]:
    """{item_id: score} for every mining item (None: missing verdict); a judgment file that does not
    cover the mining set (a stale file of another mining set) is an error, not a partial choice."""
    if not Path(judgments_path).exists():
        raise InputError(f"{judgments_path} does not exist: run the mine rule for this arm's adapter_of")
    scores: dict[str, int | None] = {}
    for lineno, raw in enumerate(iter_jsonl(judgments_path), 1):
        try:
            j = Judgment.model_validate(raw)
        except ValueError as e:
            raise InputError(f"{judgments_path}:{lineno}: not a Judgment row ({e})") from None
        scores[j.item_id] = j.score
    absent = [it.item_id for it in items if it.item_id not in scores]
    if absent:
        raise InputError(
            f"{judgments_path} has no judgment for {len(absent)} mining item(s) (e.g. {absent[:3]}): it is "
            "not the judgment of this mining set; rerun the mine rule"
        )
    return {it.item_id: scores[it.item_id] for it in items}


def choose_rows(
    rule: str, items: Sequence[EvalItem], scores: dict[str, int | None], seed: int
) -> tuple[list[str], dict[str, Any]]:
    """(row ids the round trains on, in mining-set order; counts for the train summary)."""
    wrong = [it.item_id for it in items if scores[it.item_id] == 0]
    counts = {
        "mining_items": len(items),
        "judged": sum(s is not None for s in scores.values()),
        "missing_verdicts": sum(s is None for s in scores.values()),
        "judged_wrong": len(wrong),
    }
    if not wrong:
        raise InputError(
            f"the starting adapter's answers to all {counts['judged']} judged mining items were judged "
            "correct: a hard-negative round has nothing to train on (and its control no size)"
        )
    if rule == "judged_wrong":
        chosen = wrong
    elif rule == "random":
        picked = set(random.Random(f"{seed}/round").sample([it.item_id for it in items], len(wrong)))
        chosen = [it.item_id for it in items if it.item_id in picked]
    else:
        raise InputError(f"arm.round_rows={rule!r}; known: judged_wrong, random")
    counts |= {
        "round_rows": len(chosen),
        "round_rows_judged_wrong": sum(scores[i] == 0 for i in chosen),
    }
    return chosen, counts
