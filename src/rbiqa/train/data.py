"""Training rows -> prompt/completion pairs rendered with the model's own chat template.

Why prompt/completion strings and not `messages` with `assistant_only_loss`: TRL needs `{% generation %}`
markers in the chat template for assistant masks, and SmolLM2's template has none (TRL only patches a
fixed list of templates). Rendering the prompt ourselves with `add_generation_prompt=True` and making the
completion `answer + <end-of-turn>` works with any template; TRL's completion-only loss then trains
exactly the answer and the end-of-turn token, which teaches the model to stop.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rbiqa.io import InputError, iter_jsonl

log = logging.getLogger(__name__)


class TrainRow(BaseModel):
    """The fields training reads; other columns (regulation_area, ...) pass through unchecked."""

    model_config = ConfigDict(extra="allow")

    row_id: str = Field(min_length=1)
    source_id: str = Field(min_length=1)
    variant_idx: int = Field(ge=0)
    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    estimated_difficulty: int | None = None


def load_rows(path: Path) -> list[TrainRow]:
    if not Path(path).exists():
        raise InputError(f"{path} does not exist: run the clean stage first (`snakemake --cores 1 {path}`)")
    rows = []
    for i, raw in enumerate(iter_jsonl(path), 1):
        try:
            rows.append(TrainRow.model_validate(raw))
        except ValidationError as e:
            raise InputError(
                f"{path}: row {i} is not a training row: {e.errors()[0]['msg']} at {e.errors()[0]['loc']}"
            ) from None
    if not rows:
        raise InputError(f"{path} has no rows")
    return rows


def select_variants(
    rows: list[TrainRow], k: int, path: Path | str = "train", requested: int | None = None
) -> list[TrainRow]:
    """Originals plus the first k rephrasings of each source (the arm's `n_rephrasings`).

    `requested` is the rephrase stage's k. Sources with fewer than k rephrasings (the rephraser's filters
    or the cleaner rejected the rest) train on what they have: a yield shortfall, logged and counted by
    rephrasings_per_source, not a reason to stop. Without `requested`, data that has no source with k
    rephrasings is taken as the wrong file for this arm and refused."""
    available = max(r.variant_idx for r in rows)
    if k > available and (requested is None or k > requested):
        raise InputError(
            f"the arm asks for {k} rephrasing(s) per question but {path} has at most {available}; "
            "raise rephrase.k and rerun the rephrase stage, or pick an arm with fewer"
        )
    chosen = [r for r in rows if r.variant_idx <= k]
    short = {r.source_id for r in rows} - {r.source_id for r in chosen if r.variant_idx == k}
    if short:
        log.warning(
            "%d of %d source(s) have fewer than %d rephrasing(s) (rephrase yield or cleaning); they train "
            "on what they have: %s",
            len(short),
            len({r.source_id for r in rows}),
            k,
            rephrasings_per_source(chosen),
        )
    return chosen


def rephrasings_per_source(rows: list[TrainRow]) -> dict[int, int]:
    """{number of rephrasings: number of sources with that many}, over the rows an arm trains on."""
    per: dict[str, int] = {}
    for r in rows:
        per[r.source_id] = per.get(r.source_id, 0) + (r.variant_idx > 0)
    return {n: sum(1 for v in per.values() if v == n) for n in sorted(set(per.values()))}


def curriculum_order(rows: list[TrainRow]) -> list[TrainRow]:
    """Easy to hard; ties keep the file order (stable sort), so the order is deterministic."""
    missing = [r.row_id for r in rows if r.estimated_difficulty is None]
    if missing:
        raise InputError(f"curriculum needs estimated_difficulty on every row; missing on {missing[:5]}")
    return sorted(rows, key=lambda r: r.estimated_difficulty)


def eval_subset(rows: list[TrainRow], limit: int | None, seed: int) -> list[TrainRow]:
    """Original questions only, so every arm early-stops on the same eval set whatever its k."""
    originals = [r for r in rows if r.variant_idx == 0] or rows
    if limit is None or limit >= len(originals):
        return originals
    keep = set(random.Random(seed).sample(range(len(originals)), limit))
    return [r for i, r in enumerate(originals) if i in keep]


def messages(row: TrainRow, system_prompt: str | None) -> list[dict[str, str]]:
    msgs = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return [*msgs, {"role": "user", "content": row.question}]


def end_of_turn(tokenizer) -> str:
    """The token the chat template closes an assistant turn with, checked against the template itself."""
    eot = tokenizer.eos_token
    probe = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "ANSWER-PROBE"}]
    rendered = tokenizer.apply_chat_template(probe, tokenize=False)
    if f"ANSWER-PROBE{eot}" not in rendered:
        raise InputError(
            f"the chat template does not close the assistant turn with eos {eot!r}: {rendered!r}; "
            "completion-only training would not teach the model to stop"
        )
    return eot


def to_prompt_completion(rows: list[TrainRow], tokenizer, system_prompt: str | None) -> list[dict[str, Any]]:
    eot = end_of_turn(tokenizer)
    bos = tokenizer.bos_token
    # A tokenizer that prepends BOS to plain text would double a BOS the template already renders.
    adds_bos = (
        bos is not None
        and tokenizer("a")["input_ids"] != tokenizer("a", add_special_tokens=False)["input_ids"]
    )
    out = []
    for r in rows:
        prompt = tokenizer.apply_chat_template(
            messages(r, system_prompt), tokenize=False, add_generation_prompt=True
        )
        if adds_bos and prompt.startswith(bos):
            prompt = prompt[len(bos) :]
        out.append({"prompt": prompt, "completion": r.answer.strip() + eot, "row_id": r.row_id})
    return out


def tokenize(pairs: list[dict[str, Any]], tokenizer, max_len: int) -> tuple[list[dict[str, Any]], int]:
    """Token ids plus a completion mask, truncated to max_len (keep the start).

    Tokenizing here rather than in TRL lets padding-free batches (where TRL enforces no max_length)
    respect max_seq_len too. TRL turns `completion_mask` into labels (-100 on the prompt). Returns
    the rows and how many were truncated; rows left with no completion token are dropped.
    """
    out, n_truncated = [], 0
    for p in pairs:
        prompt_ids = tokenizer(p["prompt"], add_special_tokens=False)["input_ids"]
        ids = tokenizer(p["prompt"] + p["completion"], add_special_tokens=False)["input_ids"]
        # the completion starts where the two tokenizations diverge (tokens can merge across the seam)
        n_prompt = next(
            (i for i, (a, b) in enumerate(zip(prompt_ids, ids, strict=False)) if a != b),
            min(len(prompt_ids), len(ids)),
        )
        mask = [0] * n_prompt + [1] * (len(ids) - n_prompt)
        if len(ids) > max_len:
            n_truncated += 1
            ids, mask = ids[:max_len], mask[:max_len]
        if 1 in mask:
            out.append({"input_ids": ids, "completion_mask": mask, "row_id": p["row_id"]})
    return out, n_truncated


def build_datasets(run, tokenizer, train_path: Path, val_path: Path):
    """(train Dataset, eval Dataset, counts) for one arm."""
    from datasets import Dataset

    t = run.train
    rows = select_variants(load_rows(train_path), run.n_rephrasings, train_path, run.rephrase_k)
    if t.curriculum:
        rows = curriculum_order(rows)
    if t.max_train_rows is not None and t.max_train_rows < len(rows):
        # a seeded subsample, kept in the arm's order (curriculum or file order)
        keep = set(random.Random(run.train_seed).sample(range(len(rows)), t.max_train_rows))
        rows = [r for i, r in enumerate(rows) if i in keep]
    val_rows = eval_subset(load_rows(val_path), t.max_eval_rows, run.seed)
    train_tok, train_cut = tokenize(
        to_prompt_completion(rows, tokenizer, run.system_prompt), tokenizer, t.max_seq_len
    )
    val_tok, val_cut = tokenize(
        to_prompt_completion(val_rows, tokenizer, run.system_prompt), tokenizer, t.max_seq_len
    )
    counts = {
        "train_rows": len(train_tok),
        "train_sources": len({r.source_id for r in rows}),
        "train_tokens_per_epoch": sum(len(r["input_ids"]) for r in train_tok),
        "train_completion_tokens_per_epoch": sum(sum(r["completion_mask"]) for r in train_tok),
        "train_rows_truncated": train_cut,
        "eval_rows": len(val_tok),
        "eval_rows_truncated": val_cut,
        "variants": sorted({r.variant_idx for r in rows}),
        "n_rephrasings": run.n_rephrasings,
        "rephrasings_per_source": rephrasings_per_source(rows),
    }
    log.info(
        "train rows %d (%d sources, variants %s, %d tokens, %d truncated to %d); eval rows %d",
        counts["train_rows"],
        counts["train_sources"],
        counts["variants"],
        counts["train_tokens_per_epoch"],
        train_cut,
        t.max_seq_len,
        counts["eval_rows"],
    )
    if not train_tok or not val_tok:
        raise InputError(f"nothing to train on or evaluate after tokenization: {counts}")
    return Dataset.from_list(train_tok), Dataset.from_list(val_tok), counts
