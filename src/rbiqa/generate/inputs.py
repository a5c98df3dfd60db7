"""Reading and checking what a generation job consumes.

Every problem a user can fix (a missing file, a row that breaks the schema, an arm the stage does not
know) raises InputError with the file, the line and the command that produces the file, so the job fails
before the model is loaded, not half-way through an eval set.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from rbiqa import paths as P
from rbiqa.io import InputError, iter_jsonl
from rbiqa.schemas import EvalItem
from rbiqa.study import ARM_KINDS

ADAPTER_FILES = ("adapter_model.safetensors", "adapter_config.json")


def check_arm(name: str | None, kind: str | None) -> str:
    if not name:
        raise InputError("no arm selected: pass arm=<name> (one of conf/arm/*.yaml)")
    if kind not in ARM_KINDS:
        raise InputError(
            f"arm {name!r} has arm.kind={kind!r}; generation knows {', '.join(ARM_KINDS)}. "
            f"Fix conf/arm/{name}.yaml."
        )
    return kind


def load_eval_items(path: str | Path, eval_set: str) -> list[EvalItem]:
    """Validated items of one eval set; duplicates and rows of another set are errors, not skipped."""
    path = Path(path)
    if not path.exists():
        raise InputError(
            f"eval set file {path} does not exist: run the clean stage first "
            "(`snakemake --cores 1 clean` or `python -m rbiqa.clean`)"
        )
    items: list[EvalItem] = []
    seen: set[str] = set()
    for lineno, row in enumerate(iter_jsonl(path), 1):
        try:
            item = EvalItem.model_validate(row)
        except ValidationError as e:
            raise InputError(f"{path}: row {lineno} is not a valid EvalItem: {_short(e)}") from e
        if item.eval_set != eval_set:
            raise InputError(f"{path}: row {lineno} has eval_set={item.eval_set!r}, expected {eval_set!r}")
        if item.item_id in seen:
            raise InputError(f"{path}: row {lineno} repeats item_id {item.item_id!r}")
        seen.add(item.item_id)
        items.append(item)
    if not items:
        raise InputError(f"eval set file {path} has no items")
    return items


def load_train_originals(path: str | Path) -> list[dict]:
    """The variant_idx == 0 training rows: the original QA pairs, without the model-written rephrasings.

    Few-shot examples and the retrieval corpus use only these, so the prompting arms see exactly the
    facts the fine-tuned arms were trained on, in their original wording.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(
            f"training file {path} does not exist: run the clean stage first "
            "(`snakemake --cores 1 clean` or `python -m rbiqa.clean`)"
        )
    rows = []
    for lineno, row in enumerate(iter_jsonl(path), 1):
        missing = [k for k in ("row_id", "source_id", "variant_idx", "question", "answer") if k not in row]
        if missing:
            raise InputError(f"{path}: row {lineno} lacks {', '.join(missing)}")
        if row["variant_idx"] == 0:
            rows.append(row)
    if not rows:
        raise InputError(f"{path} has no original (variant_idx == 0) rows")
    return rows


def adapter_files(arm: str) -> list[Path]:
    files = [P.adapter_dir(arm) / name for name in ADAPTER_FILES]
    missing = [f.as_posix() for f in files if not f.exists()]
    if missing:
        raise InputError(
            f"arm {arm!r} is fine-tuned but its adapter is missing ({', '.join(missing)}): "
            f"train it first (`snakemake --cores 1 {P.adapter_dir(arm).as_posix()}/adapter_model.safetensors`)"
        )
    return files


def _short(e: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, err['loc'])) or '<row>'}: {err['msg']}" for err in e.errors())
