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

from rbiqa.completion import prompt_completion_pairs, tokenize
from rbiqa.io import InputError, iter_jsonl

__all__ = ["TrainRow", "build_datasets", "load_rows", "select_variants", "to_prompt_completion", "tokenize"]

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


def to_prompt_completion(rows: list[TrainRow], tokenizer, system_prompt: str | None) -> list[dict[str, Any]]:
    pairs = prompt_completion_pairs(
        tokenizer, [messages(r, system_prompt) for r in rows], [r.answer for r in rows]
    )
    return [p | {"row_id": r.row_id} for p, r in zip(pairs, rows, strict=True)]


def epochs_for(t, n_rows: int, n_sources: int) -> float | None:
    """Passes over the arm's rows: num_train_epochs as set, or exposures_per_fact x sources / rows, so
    that arms with 1 or 1+k wordings per fact train the same steps and see each fact equally often."""
    if t.exposures_per_fact is None:
        return t.num_train_epochs
    return t.exposures_per_fact * n_sources / n_rows


def mix_rows(
    paths: dict[str, Path], shares: dict[str, float], n_rows: int, seed: int
) -> dict[str, list[TrainRow]]:
    """{pool: rows} beside n_rows QA rows, so that each pool is its share of all the rows trained on: a
    seeded sample of the pool, whole passes over it first when more are needed than it holds."""
    out = {}
    rest = 1 - sum(shares.values())
    for pool, share in shares.items():
        if not share:
            continue
        if pool not in paths:
            raise InputError(f"train.mix.{pool} > 0 but the job has no file of {pool} examples")
        rows = load_rows(paths[pool])
        n = round(share * n_rows / rest)
        rng = random.Random(f"{seed}/{pool}")
        out[pool] = rows * (n // len(rows)) + rng.sample(rows, n % len(rows))
        if n > len(rows):
            log.warning("%d %s rows asked for, %d in %s: each is repeated", n, pool, len(rows), paths[pool])
    return out


def round_rows(run, rows: list[TrainRow], mining: tuple[Path, Path]) -> tuple[list[TrainRow], dict[str, Any]]:
    """A refine arm's rows: the training rows arm.round_rows picks from the mining set (rbiqa.train.round).
    `mining` is (the mining set, the starting arm's judgments of it)."""
    from rbiqa import paths as P
    from rbiqa.generate.inputs import load_eval_items
    from rbiqa.train.round import choose_rows, judged_scores

    items = load_eval_items(mining[0], P.TRAIN_MINING)
    chosen, counts = choose_rows(run.round_rows, items, judged_scores(items, mining[1]), run.train_seed)
    by_id = {r.row_id: r for r in rows}
    stale = [i for i in chosen if i not in by_id]
    if stale:
        raise InputError(
            f"{mining[0]} names rows that are not in the training file (e.g. {stale[:3]}): rerun clean"
        )
    return [by_id[i] for i in chosen], counts


def build_datasets(run, tokenizer, train_path: Path, val_paths: dict[str, Path], mix_paths=None, mining=None):
    """(train Dataset, {eval set name: Dataset}, counts) for one arm. `val_paths` are the eval-loss sets:
    val_paraphrase (held-out wordings of trained facts: the selection set) and val_unseen (unseen facts:
    a curve only). `mix_paths`: {pool: file} of the rows mixed in at train.mix's shares. `mining`: a
    refine arm's (mining set, judgments) pair, from which its round's rows are chosen instead."""
    from datasets import Dataset

    t = run.train
    round_counts = None
    if run.round_rows:
        rows, round_counts = round_rows(run, load_rows(train_path), mining)
    else:
        rows = select_variants(load_rows(train_path), run.n_rephrasings, train_path, run.rephrase_k)
    if t.curriculum:
        rows = curriculum_order(rows)
    if t.max_train_rows is not None and t.max_train_rows < len(rows):
        # a seeded subsample, kept in the arm's order (curriculum or file order)
        keep = set(random.Random(run.train_seed).sample(range(len(rows)), t.max_train_rows))
        rows = [r for i, r in enumerate(rows) if i in keep]
    n_sources = len({r.source_id for r in rows})  # QA facts; abstention examples are not facts
    mixed = mix_rows(mix_paths or {}, t.mix, len(rows), run.train_seed)
    n_qa = len(rows)
    rows = rows + [r for pool in sorted(mixed) for r in mixed[pool]]
    train_tok, train_cut = tokenize(
        to_prompt_completion(rows, tokenizer, run.system_prompt), tokenizer, t.max_seq_len
    )
    evals, eval_counts = {}, {}
    for name, path in val_paths.items():
        val_rows = eval_subset(load_rows(path), t.max_eval_rows, run.seed)
        tok, cut = tokenize(
            to_prompt_completion(val_rows, tokenizer, run.system_prompt), tokenizer, t.max_seq_len
        )
        if not tok:
            raise InputError(f"no {name} rows to evaluate on after tokenization ({path})")
        evals[name] = Dataset.from_list(tok)
        eval_counts[name] = {"rows": len(tok), "rows_truncated": cut}
    counts = {
        "train_rows": len(train_tok),
        "train_sources": n_sources,
        "train_tokens_per_epoch": sum(len(r["input_ids"]) for r in train_tok),
        "train_completion_tokens_per_epoch": sum(sum(r["completion_mask"]) for r in train_tok),
        "train_rows_truncated": train_cut,
        "num_train_epochs": epochs_for(t, len(train_tok), n_sources) if train_tok else None,
        "exposures_per_fact": t.exposures_per_fact,
        "eval": eval_counts,
        "variants": sorted({r.variant_idx for r in rows}),
        "n_rephrasings": run.n_rephrasings,
        "rephrasings_per_source": rephrasings_per_source(rows[:n_qa]),
        "mix_rows": {pool: len(v) for pool, v in mixed.items()},
        "mix_shares": {pool: share for pool, share in t.mix.items() if share},
    }
    if round_counts is not None:
        counts["round"] = round_counts | {"rows_picked_by": run.round_rows, "steps": t.max_steps}
        counts["num_train_epochs"] = (
            t.max_steps * t.effective_batch_size / len(train_tok) if train_tok else None
        )
    log.info(
        "train rows %d (%d sources, variants %s, %d tokens, %d truncated to %d); %s epochs; eval rows %s",
        counts["train_rows"],
        counts["train_sources"],
        counts["variants"],
        counts["train_tokens_per_epoch"],
        train_cut,
        t.max_seq_len,
        counts["num_train_epochs"],
        {k: v["rows"] for k, v in eval_counts.items()},
    )
    if not train_tok:
        raise InputError(f"nothing to train on after tokenization: {counts}")
    return Dataset.from_list(train_tok), evals, counts
