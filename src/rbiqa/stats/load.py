"""Read judgments and eval items into one long table, refusing inconsistent input loudly.

A stale or half-written judgments file would silently bias every number downstream, so mismatches
(wrong arm or set inside a file, duplicate items, items not in the eval set, a score on a "missing"
row) raise InputError naming the file. An eval item with no judgment row at all is kept as
status "absent": like "missing" it is excluded from denominators and counted.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import ValidationError

from rbiqa import paths as P
from rbiqa.io import InputError, iter_jsonl
from rbiqa.schemas import EvalItem, Judgment

META_COLUMNS = ("regulation_area", "category", "difficulty")
COLUMNS = [
    "arm",
    "eval_set",
    "item_id",
    "source_id",
    "score",
    "abstained",
    "status",
    "judge_model",
    *META_COLUMNS,
]


def _validated(path: Path, model):
    if not path.exists():
        raise InputError(f"{path} does not exist: run the stage that produces it first")
    for lineno, row in enumerate(iter_jsonl(path), 1):
        try:
            yield model.model_validate(row)
        except ValidationError as e:
            first = e.errors()[0]
            loc = ".".join(str(x) for x in first["loc"])
            raise InputError(f"{path}: row {lineno}: field {loc!r}: {first['msg']}") from e


def load_eval_items(eval_set: str, root: Path = Path(".")) -> pd.DataFrame:
    path = root / P.eval_set_path(eval_set)
    rows = []
    for item in _validated(path, EvalItem):
        if item.eval_set != eval_set:
            raise InputError(f"{path}: item {item.item_id!r} says eval_set={item.eval_set!r}")
        rows.append(
            {"item_id": item.item_id, "source_id": item.source_id}
            | {c: getattr(item, c) for c in META_COLUMNS}
        )
    df = pd.DataFrame(rows, columns=["item_id", "source_id", *META_COLUMNS])
    dup = df["item_id"].duplicated()
    if dup.any():
        raise InputError(f"{path}: duplicate item_id {df.loc[dup, 'item_id'].iloc[0]!r}")
    return df


def load_judgments(arm: str, eval_set: str, root: Path = Path(".")) -> pd.DataFrame:
    path = root / P.judgments(arm, eval_set)
    rows = []
    for j in _validated(path, Judgment):
        if j.arm != arm or j.eval_set != eval_set:
            raise InputError(f"{path}: item {j.item_id!r} is labelled arm={j.arm!r}, eval_set={j.eval_set!r}")
        if j.status == "ok" and j.score is None:
            raise InputError(f"{path}: item {j.item_id!r} has status 'ok' but no score")
        if j.status == "missing" and j.score is not None:
            raise InputError(f"{path}: item {j.item_id!r} has status 'missing' but score {j.score}")
        rows.append(
            {
                "item_id": j.item_id,
                "source_id": j.source_id,
                "score": np.nan if j.score is None else float(j.score),
                "abstained": np.nan if j.abstained is None else float(j.abstained),
                "status": j.status,
                "judge_model": j.judge_model,
            }
        )
    df = pd.DataFrame(rows, columns=["item_id", "source_id", "score", "abstained", "status", "judge_model"])
    dup = df["item_id"].duplicated()
    if dup.any():
        raise InputError(f"{path}: duplicate judgment for item {df.loc[dup, 'item_id'].iloc[0]!r}")
    return df


def load_results(arms: Iterable[str], eval_sets: Iterable[str], root: Path = Path(".")) -> pd.DataFrame:
    """Long table of every (arm, eval item): judged, missing, or absent, with the item's metadata."""
    frames = []
    for eval_set in eval_sets:
        items = load_eval_items(eval_set, root)
        for arm in arms:
            judg = load_judgments(arm, eval_set, root)
            unknown = set(judg["item_id"]) - set(items["item_id"])
            if unknown:
                raise InputError(
                    f"{P.judgments(arm, eval_set)}: {len(unknown)} item(s) not in {P.eval_set_path(eval_set)}, "
                    f"e.g. {sorted(unknown)[0]!r}: judgments are stale, rerun generate/judge for {arm}"
                )
            merged = items.merge(judg, on="item_id", how="left", suffixes=("", "_judged"))
            clash = merged["source_id_judged"].notna() & (merged["source_id_judged"] != merged["source_id"])
            if clash.any():
                raise InputError(
                    f"{P.judgments(arm, eval_set)}: source_id differs from the eval set for item "
                    f"{merged.loc[clash, 'item_id'].iloc[0]!r}"
                )
            merged["status"] = merged["status"].fillna("absent")
            merged["arm"] = arm
            merged["eval_set"] = eval_set
            frames.append(merged[COLUMNS])
    if not frames:
        raise InputError("no arms or eval sets to load")
    return pd.concat(frames, ignore_index=True)
