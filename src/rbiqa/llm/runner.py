"""Run many JSON requests through one client: cache first, bounded concurrency, one result per task.

Every task yields exactly one TaskResult (ok with a value, or failed with the error), so callers can
account for each item; nothing is dropped. Successes are cached as they complete.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from tqdm.auto import tqdm

from rbiqa.llm.base import JsonLLMClient, describe_error
from rbiqa.llm.cache import ResultCache


@dataclass(frozen=True)
class JsonTask:
    key: str  # cache key (rbiqa.llm.cache.cache_key of everything that determines the output)
    prompt: str
    schema: type[BaseModel]
    system: str | None = None
    temperature: float = 0.0
    seed: int | None = None
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass
class TaskResult:
    task: JsonTask
    value: dict[str, Any] | None  # the validated object as a plain dict; None when the task failed
    error: str | None = None
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.value is not None


async def run_json_tasks(
    client: JsonLLMClient,
    tasks: Sequence[JsonTask],
    cache: ResultCache | None = None,
    on_result: Callable[[TaskResult], None] | None = None,
    progress: bool = True,
    desc: str = "llm",
) -> list[TaskResult]:
    """Results come back in task order. Tasks sharing a key are sent once and share the result."""
    results: dict[str, TaskResult] = {}
    todo: dict[str, JsonTask] = {}
    for t in tasks:
        if t.key in results or t.key in todo:
            continue
        hit = cache.get(t.key) if cache is not None else None
        if hit is not None:
            results[t.key] = TaskResult(t, hit, cached=True)
            if on_result:
                on_result(results[t.key])
        else:
            todo[t.key] = t

    bar = tqdm(total=len(todo), desc=desc, unit="call", disable=not progress or not todo)

    async def _one(t: JsonTask) -> None:
        try:
            obj = await client.generate_json(
                t.prompt, t.schema, system=t.system, temperature=t.temperature, seed=t.seed
            )
            value = obj.model_dump(mode="json")
            if cache is not None:
                cache.set(t.key, value)  # committed now: a killed run keeps this item
            res = TaskResult(t, value)
        except Exception as e:  # recorded per item, never raised past the batch
            res = TaskResult(t, None, error=describe_error(e))
        results[t.key] = res
        bar.update(1)
        if on_result:
            on_result(res)

    try:
        await asyncio.gather(*(_one(t) for t in todo.values()))
    finally:
        bar.close()
    return [TaskResult(t, results[t.key].value, results[t.key].error, results[t.key].cached) for t in tasks]
