"""The generation loop: batches, per-item retry, and the cache.

A batch that raises is retried one item at a time, so one bad prompt (too long, a tokenizer edge case,
an out-of-memory spike on a long batch) costs only its own answer; an item that fails alone is reported
with its error and answer=None, never as an answer string. Successful items are appended to the cache
batch by batch, which is what makes a killed job resumable.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rbiqa.generate.cache import ItemCache
from rbiqa.models import Messages

log = logging.getLogger(__name__)

# (conversations, each one's max new tokens) -> one output per conversation
GenerateFn = Callable[[list[Messages], list[int | None]], list[dict[str, Any]]]
MAX_ERROR_CHARS = 1000


class FatalGenerationError(RuntimeError):
    """A failure of the whole run (the model cannot be loaded), which per-item retries cannot fix."""


@dataclass(frozen=True)
class Job:
    item_id: str
    key: str
    messages: Messages
    context_ids: tuple[str, ...] = ()
    max_new_tokens: int | None = None  # this item's decoding budget; None = the stage's max_new_tokens


@dataclass
class RunStats:
    n_items: int = 0
    n_cached: int = 0
    n_generated: int = 0
    n_errors: int = 0
    model_calls: int = 0
    new_tokens: int = 0
    prompt_tokens: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # process CPU time: the cost on an unshared machine, where wall time is not
    errors: dict[str, str] = field(default_factory=dict)

    def throughput(self) -> dict[str, float | None]:
        """answers/s and new tokens/s over generation time (model load excluded).

        Keys say "tok", not "token": rbiqa.manifest.scrub redacts any key containing "token".
        """

        def rate(n: float, s: float, digits: int) -> float | None:
            return round(n / s, digits) if s > 0 and self.n_generated else None

        return {
            "answers_per_s": rate(self.n_generated, self.seconds, 4),
            "tok_per_s": rate(self.new_tokens, self.seconds, 2),
            "answers_per_cpu_s": rate(self.n_generated, self.cpu_seconds, 4),
            "tok_per_cpu_s": rate(self.new_tokens, self.cpu_seconds, 2),
        }


def error_text(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"[:MAX_ERROR_CHARS]


def _free_accelerator_memory() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # noqa: BLE001 - best effort before a retry
        pass


def prompt_chars(job: Job) -> int:
    return sum(len(m["content"]) for m in job.messages)


def balanced_batches(jobs: Sequence[Job], max_size: int) -> list[Sequence[Job]]:
    """The fewest batches of at most max_size, of (nearly) equal size.

    Jobs arrive sorted by prompt length, so each batch pads little; equal sizes avoid a small last batch
    that pays a full decoding run (every batch decodes until its longest answer ends) for few answers.
    Batch composition cannot change any answer: batched greedy decoding equals one-by-one decoding.
    """
    if not jobs:
        return []
    n_batches = -(-len(jobs) // max_size)
    size, extra = divmod(len(jobs), n_batches)
    out, start = [], 0
    for b in range(n_batches):
        end = start + size + (b < extra)
        out.append(jobs[start:end])
        start = end
    return out


def _ok_row(job: Job, out: dict[str, Any]) -> dict[str, Any]:
    return {
        "key": job.key,
        "item_id": job.item_id,
        "answer": out["text"],
        "n_prompt_tokens": out.get("n_prompt_tokens"),
        "n_new_tokens": out.get("n_new_tokens"),
        "seconds": round(float(out.get("seconds") or 0.0), 4),
    }


def _call(fn: GenerateFn, jobs: Sequence[Job], stats: RunStats) -> list[dict[str, Any]]:
    stats.model_calls += 1
    outs = fn([j.messages for j in jobs], [j.max_new_tokens for j in jobs])
    if len(outs) != len(jobs):
        raise RuntimeError(f"generator returned {len(outs)} outputs for {len(jobs)} prompts")
    return [_ok_row(j, o) for j, o in zip(jobs, outs, strict=True)]


def run_jobs(
    jobs: Sequence[Job],
    generate_fn: GenerateFn,
    cache: ItemCache,
    batch_size: int,
    progress: bool = True,
) -> tuple[dict[str, dict[str, Any]], RunStats]:
    """Answer every job not already in the cache; returns {key: cached-or-new row} and the run's stats.

    Failed keys are in stats.errors (key -> error text) and absent from the returned rows.
    """
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    stats = RunStats(n_items=len(jobs))
    unique: dict[str, Job] = {}
    for j in jobs:
        unique.setdefault(j.key, j)  # identical prompts are answered once
    pending = sorted(
        (j for j in unique.values() if cache.get(j.key) is None), key=lambda j: (prompt_chars(j), j.key)
    )
    stats.n_cached = len(unique) - len(pending)
    log.info(
        "%d items, %d distinct prompts, %d cached, %d to generate",
        len(jobs),
        len(unique),
        stats.n_cached,
        len(pending),
    )
    bar = tqdm(
        total=len(unique), initial=stats.n_cached, desc="generate", unit="answer", disable=not progress
    )
    t0, c0 = time.perf_counter(), time.process_time()
    for batch in balanced_batches(pending, batch_size):
        try:
            done = _call(generate_fn, batch, stats)
        except FatalGenerationError:
            raise
        except Exception as e:  # noqa: BLE001 - any failure falls back to one-by-one
            log.warning("batch of %d failed (%s); retrying item by item", len(batch), error_text(e))
            _free_accelerator_memory()
            done = []
            for job in batch:
                try:
                    done.extend(_call(generate_fn, [job], stats))
                except FatalGenerationError:
                    raise
                except Exception as e1:  # noqa: BLE001 - recorded per item, never as an answer
                    stats.errors[job.key] = error_text(e1)
                    log.error("item %s failed: %s", job.item_id, stats.errors[job.key])
                    _free_accelerator_memory()
        cache.add(done)
        stats.n_generated += len(done)
        stats.new_tokens += sum(r["n_new_tokens"] or 0 for r in done)
        stats.prompt_tokens += sum(r["n_prompt_tokens"] or 0 for r in done)
        bar.update(len(batch))
    stats.seconds = time.perf_counter() - t0
    stats.cpu_seconds = time.process_time() - c0
    bar.close()
    stats.n_errors = sum(1 for j in jobs if j.key in stats.errors)
    rows = {k: row for k in unique if (row := cache.get(k)) is not None}
    return rows, stats
