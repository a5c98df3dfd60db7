"""Reading and cross-checking the judge's inputs: one eval set and one arm's generations for it.

These files come from other stages; a row that breaks the contract (wrong schema, unknown or
duplicated item, wrong arm or set) is a bug upstream, so the job stops with file, line and reason
instead of judging a silently different set of items.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from rbiqa import paths as P
from rbiqa.io import InputError, iter_jsonl
from rbiqa.schemas import EvalItem, Generation

MAX_REPORTED = 10


def _short(e: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, err['loc'])) or 'row'}: {err['msg']}" for err in e.errors()[:3])


def _validated(path: Path, model, what: str, hint: str) -> list:
    if not path.is_file():
        raise InputError(f"{what} not found: {path} ({hint})")
    rows, bad = [], []
    for lineno, raw in enumerate(iter_jsonl(path), 1):
        try:
            rows.append(model.model_validate(raw))
        except ValidationError as e:
            bad.append(f"row {lineno}: {_short(e)}")
    if bad:
        shown = "\n  ".join(bad[:MAX_REPORTED])
        more = f"\n  ... and {len(bad) - MAX_REPORTED} more" if len(bad) > MAX_REPORTED else ""
        raise InputError(
            f"{path}: {len(bad)} of {len(rows) + len(bad)} rows break the {model.__name__} schema:\n  {shown}{more}"
        )
    return rows


def _no_duplicates(path: Path, ids: list[str]) -> None:
    seen, dup = set(), []
    for i in ids:
        if i in seen:
            dup.append(i)
        seen.add(i)
    if dup:
        raise InputError(f"{path}: duplicated item_id {sorted(set(dup))[:MAX_REPORTED]}")


def load_eval_items(eval_set: str, path: Path | None = None) -> list[EvalItem]:
    path = path or P.eval_set_path(eval_set)
    items = _validated(path, EvalItem, f"eval set {eval_set!r}", "run the clean stage first")
    _no_duplicates(path, [i.item_id for i in items])
    wrong = [i.item_id for i in items if i.eval_set != eval_set]
    if wrong:
        raise InputError(f"{path}: {len(wrong)} items belong to another eval set, e.g. {wrong[:3]}")
    if eval_set != "unanswerable":
        no_ref = [i.item_id for i in items if not (i.reference or "").strip()]
        if no_ref:
            raise InputError(
                f"{path}: {len(no_ref)} items of {eval_set!r} have no reference answer, e.g. {no_ref[:3]}; "
                "only 'unanswerable' items may lack one"
            )
    return items


def load_generations(
    arm: str, eval_set: str, items: list[EvalItem], path: Path | None = None
) -> dict[str, Generation]:
    path = path or P.generations(arm, eval_set)
    gens = _validated(
        path, Generation, f"generations of arm {arm!r} on {eval_set!r}", "run the generate stage first"
    )
    _no_duplicates(path, [g.item_id for g in gens])
    known = {i.item_id for i in items}
    problems = []
    for lineno, g in enumerate(gens, 1):
        if g.item_id not in known:
            problems.append(
                f"row {lineno}: unknown item_id {g.item_id!r} (not in {P.eval_set_path(eval_set)})"
            )
        if g.arm != arm:
            problems.append(f"row {lineno}: arm {g.arm!r}, expected {arm!r}")
        if g.eval_set != eval_set:
            problems.append(f"row {lineno}: eval_set {g.eval_set!r}, expected {eval_set!r}")
    if problems:
        shown = "\n  ".join(problems[:MAX_REPORTED])
        raise InputError(f"{path}: {len(problems)} rows do not match the eval set / arm:\n  {shown}")
    return {g.item_id: g for g in gens}
