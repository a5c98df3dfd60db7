"""Turn (eval items, generations) into one Judgment per eval item, through the cache and a backend.

The runner, not the backends, enforces the project's accounting rules: every eval item gets exactly
one Judgment; a failed generation or a failed judge call becomes score=None/status="missing" with
the reason, never 0; only successes are cached, the moment they arrive, so a rerun (or a resumed, killed
run) repeats no call and a kill loses at most the calls in flight.

Cache keys hash everything that determines a verdict: backend, judge model, prompt hash, question,
reference and answer. Several judge jobs, one per arm, run at once; the cache (rbiqa.llm.cache) has two
layouts for that (`judge.cache_scope`):

- shared: one database for every arm, so an answer two arms share is judged once. Every job must run on
  one host (SQLite's locks and WAL; see rbiqa.llm.cache).
- arm: one database per arm, which only that arm's job opens (Snakemake runs one judge job per arm), as a
  shard. No two processes use the same file at once, so jobs on different hosts of a shared file system
  never depend on cross-host locking, and a rerun of the arm on any node finds its verdicts.

`auto` (the default) picks arm inside a SLURM job and shared elsewhere.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rbiqa.judge.protocol import JudgeBackend, JudgeConfigError, JudgeTask, Outcome
from rbiqa.llm.cache import ResultCache, cache_key
from rbiqa.schemas import EvalItem, Generation, Judgment

log = logging.getLogger(__name__)

CACHE_SCOPES = ("auto", "shared", "arm")


def judgment_key(
    backend: str, model: str, prompt_hash: str | None, question: str, reference: str | None, answer: str
) -> str:
    return cache_key(
        backend=backend,
        model=model,
        prompt_hash=prompt_hash,
        question=question,
        reference=reference,
        answer=answer,
    )


def open_judge_cache(root: str | Path, scope: str, arm: str, enabled: bool = True) -> ResultCache:
    """The cache one arm's judge job uses: `root` itself (shared) or `root/arms/<arm>` (arm, a shard).

    `auto` looks for SLURM_JOB_ID, which SLURM sets in every job and the executor plugin's job step keeps: a
    job on a cluster may share the file system with jobs on other hosts, a local run shares one host.
    """
    if scope not in CACHE_SCOPES:
        raise JudgeConfigError(f"judge.cache_scope must be one of {', '.join(CACHE_SCOPES)}, not {scope!r}")
    if scope == "auto":
        scope = "arm" if os.environ.get("SLURM_JOB_ID") else "shared"
    cache = (
        ResultCache(Path(root) / "arms" / arm, enabled, shard=True)
        if scope == "arm"
        else ResultCache(root, enabled)
    )
    log.info("judge cache (%s): %s", scope if enabled else "disabled", cache.directory)
    return cache


@dataclass
class RunStats:
    counts: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, int]:
        keys = (
            "items",
            "ok",
            "missing",
            "generation_failed",
            "no_generation",
            "cache_hits",
            "judge_calls",
            "judge_failed",
        )
        return {k: int(self.counts.get(k, 0)) for k in keys}


def _task_for(item: EvalItem, answer: str) -> JudgeTask:
    kind = "abstention" if item.eval_set == "unanswerable" else "reference"
    return JudgeTask(
        item_id=item.item_id, kind=kind, question=item.question, reference=item.reference, answer=answer
    )


def run_judgments(
    items: list[EvalItem],
    generations: dict[str, Generation],
    arm: str,
    backend: JudgeBackend,
    cache: ResultCache,
) -> tuple[list[Judgment], RunStats]:
    stats = RunStats()
    outcomes: dict[str, Outcome] = {}
    tasks: dict[str, JudgeTask] = {}
    keys: dict[str, str] = {}
    for item in items:
        stats.counts["items"] += 1
        gen = generations.get(item.item_id)
        if gen is None:
            stats.counts["no_generation"] += 1
            outcomes[item.item_id] = Outcome.failed("no generation row for this item")
            continue
        if gen.answer is None:
            stats.counts["generation_failed"] += 1
            outcomes[item.item_id] = Outcome.failed(
                f"generation failed: {gen.error or 'no answer and no error recorded'}"
            )
            continue
        task = _task_for(item, gen.answer)
        key = judgment_key(
            backend.name,
            backend.model_id,
            backend.prompt_hash(task.kind),
            task.question,
            task.reference,
            task.answer,
        )
        keys[item.item_id] = key
        if (hit := cache.get(key)) is not None:
            stats.counts["cache_hits"] += 1
            outcomes[item.item_id] = Outcome(**hit)
        else:
            tasks[item.item_id] = task
    if stats.counts["no_generation"]:
        log.warning(
            "%d eval items have no generation row; recorded as missing", stats.counts["no_generation"]
        )

    def on_result(task: JudgeTask, outcome: Outcome) -> None:
        if task.item_id not in tasks:
            raise RuntimeError(f"judge backend answered for an item it was not asked about: {task.item_id}")
        if task.item_id in outcomes:
            raise RuntimeError(f"judge backend answered twice for item {task.item_id}")
        stats.counts["judge_calls"] += 1
        if outcome.ok:
            cache.set(
                keys[task.item_id],
                {"score": outcome.score, "reasoning": outcome.reasoning, "p_correct": outcome.p_correct},
            )
        else:
            stats.counts["judge_failed"] += 1
        outcomes[task.item_id] = outcome

    log.info(
        "judging %d items (%d from cache) with %s/%s",
        len(tasks),
        stats.counts["cache_hits"],
        backend.name,
        backend.model_id,
    )
    backend.judge(list(tasks.values()), on_result)

    judgments = []
    for item in items:
        outcome = outcomes.get(item.item_id) or Outcome.failed(
            "judge backend returned no outcome for this item"
        )
        kind = "abstention" if item.eval_set == "unanswerable" else "reference"
        ok = outcome.ok
        stats.counts["ok" if ok else "missing"] += 1
        judgments.append(
            Judgment(
                item_id=item.item_id,
                source_id=item.source_id,
                eval_set=item.eval_set,
                arm=arm,
                score=outcome.score if ok else None,
                status="ok" if ok else "missing",
                error=None if ok else outcome.error,
                reasoning=outcome.reasoning,
                p_correct=outcome.p_correct,
                judge_backend=backend.name,
                judge_model=backend.model_id,
                prompt_hash=backend.prompt_hash(kind),
            )
        )
    return judgments, stats
