"""Candidate generators for the rephrase stage: a local chat model, or a JSON API (Gemini,
OpenAI-compatible), both through rbiqa.llm; the shipped paraphrases are rbiqa.rephrase.shipped.

conf/rephrase/<backend>.yaml names the backend class and its LLM with Hydra `_target_`s (`rephrase.impl`);
the stage builds it with the prompt and the cache. Every backend answers a list of GenRequests with one
GenResult each (texts, or the error), consults the cache first and writes each result to it as soon as it
exists.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field
from tqdm.auto import tqdm

from rbiqa.io import sha256_file, sha256_text
from rbiqa.llm import CallStats, JsonLLMClient, JsonTask, ResultCache, cache_key, run_json_tasks
from rbiqa.llm.hf_local import HFLocalChatModel
from rbiqa.rephrase.prompts import PromptSpec

log = logging.getLogger(__name__)


class Rephrasings(BaseModel):
    """What the JSON backends must return."""

    rephrasings: list[str] = Field(min_length=1)


@dataclass(frozen=True)
class GenRequest:
    source_id: str
    question: str
    n: int  # candidates wanted
    attempt: int
    temperature: float
    seed: int
    heldout: bool = False  # one of the n is for a held-out wording (only the shipped backend designates it)


@dataclass
class GenResult:
    request: GenRequest
    texts: list[str] = field(default_factory=list)  # raw model outputs, one per candidate
    error: str | None = None
    cached: int = 0  # candidates served from the cache
    heldout_slot: int | None = None  # the candidate meant as the held-out wording, where the backend says


def item_seed(seed: int, *parts: Any) -> int:
    """A per-item seed that does not depend on batch composition or run order."""
    return int(sha256_text("|".join(map(str, (seed, *parts))))[:8], 16)


class HFLocalBackend:
    """A local chat model (rbiqa.llm.hf_local), sampling `max_new_tokens` at most per candidate (fewer where
    the candidate could only end up too long: `max_len_ratio`), `batch_size` candidates per forward pass,
    with the prompt's few-shot prefix encoded once when `prefix_cache` is on. Candidates do not depend on
    the batch or the worker process they land in (per-item seeds; rbiqa.prefix_decoding)."""

    name = "hf_local"

    def __init__(
        self,
        llm: HFLocalChatModel,
        prompt: PromptSpec,
        cache: ResultCache,
        max_new_tokens: int,
        max_len_ratio: float = 2.0,
        top_p: float = 1.0,
        batch_size: int = 16,
        prefix_cache: bool = True,
    ):
        self.llm = llm
        self.prompt = prompt
        self.cache = cache
        self.model_path = llm.model_path
        self.model_id = llm.model_id
        weights = self.model_path / "model.safetensors"
        if not weights.exists():
            raise FileNotFoundError(
                f"no rephrasing model at {self.model_path}: run `python -m rbiqa.fetch_model` (or point "
                "rephrase.model_path at a converted Hugging Face model directory)"
            )
        # the weights' hash, not the path, identifies the model in cache keys
        self.model_sha256 = sha256_file(weights)
        self.max_new_tokens = int(max_new_tokens)
        self.max_len_ratio = float(max_len_ratio)
        self.top_p = float(top_p)
        self.batch_size = int(batch_size)
        self.prefix_cache = bool(prefix_cache)
        self.calls = 0
        self.new_tokens = 0
        self.gen_seconds = 0.0

    def close(self) -> None:
        self.llm.close()

    def token_limit(self, question: str) -> int:
        """Decoding stops where the candidate could only end up `too_long`: ~max_len_ratio x the
        original's tokens (+ a little slack), and never beyond max_new_tokens."""
        n_q = len(self.llm.tokenizer(question, add_special_tokens=False)["input_ids"])
        return max(8, min(self.max_new_tokens, math.ceil(self.max_len_ratio * n_q) + 4))

    def key(self, req: GenRequest, slot: int) -> str:
        return cache_key(
            backend=self.name,
            model_sha256=self.model_sha256,
            prompt_version=self.prompt.version,
            prompt_sha256=self.prompt.sha256,
            question=req.question,
            temperature=round(req.temperature, 6),
            top_p=self.top_p,
            max_new_tokens=self.max_new_tokens,
            max_len_ratio=self.max_len_ratio,
            seed=item_seed(req.seed, req.source_id, req.attempt, slot),
        )

    def generate(self, requests: Sequence[GenRequest]) -> list[GenResult]:
        results = {id(r): GenResult(r, texts=[None] * r.n) for r in requests}  # type: ignore[list-item]
        todo: list[tuple[GenRequest, int, str]] = []
        for r in requests:
            for slot in range(r.n):
                k = self.key(r, slot)
                hit = self.cache.get(k)
                if hit is not None:
                    results[id(r)].texts[slot] = hit["text"]
                    results[id(r)].cached += 1
                else:
                    todo.append((r, slot, k))
        if not todo:
            return [results[id(r)] for r in requests]
        batches = self._batches(todo)
        bar = tqdm(total=len(todo), desc=f"rephrase[{self.name}]", unit="cand")
        t0 = time.perf_counter()
        sampled = self.llm.sample([kw for _, kw in batches], self.prompt.chat_prefix(), self.prefix_cache)
        for i, outs in sampled:  # each finished batch is cached at once
            items = batches[i][0]
            for (r, slot, k), out in zip(items, outs, strict=True):
                self.cache.set(k, {"text": out["text"], "n_new_tokens": out["n_new_tokens"]})
                results[id(r)].texts[slot] = out["text"]
                self.calls += 1
                self.new_tokens += out["n_new_tokens"]
            bar.update(len(items))
        self.gen_seconds += time.perf_counter() - t0
        bar.close()
        return [results[id(r)] for r in requests]

    def _batches(self, todo: list[tuple[GenRequest, int, str]]) -> list[tuple[list, dict[str, Any]]]:
        """(items, sampler.generate kwargs) per batch of at most batch_size; one temperature per batch
        (requests of one attempt share it)."""
        bs = self.batch_size
        out = []
        for start in range(0, len(todo), bs):
            by_temp: dict[float, list[tuple[GenRequest, int, str]]] = {}
            for item in todo[start : start + bs]:
                by_temp.setdefault(item[0].temperature, []).append(item)
            for temp, items in by_temp.items():
                kw = {
                    "users": [self.prompt.user(r.question) for r, _, _ in items],
                    "seeds": [item_seed(r.seed, r.source_id, r.attempt, s) for r, s, _ in items],
                    "max_new_tokens": [self.token_limit(r.question) for r, _, _ in items],
                    "do_sample": True,
                    "temperature": temp,
                    "top_p": self.top_p,
                }
                out.append((items, kw))
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model_id": self.model_id,
            "model_path": self.model_path.as_posix(),
            "model_sha256": self.model_sha256,
        }

    def call_stats(self) -> dict[str, Any]:
        return {
            "model_calls": self.calls,
            "new_tokens": self.new_tokens,
            "generation_seconds": round(self.gen_seconds, 2),
        }


class JsonAPIBackend:
    """Gemini or an OpenAI-compatible server: one call returns n rephrasings as JSON. `client` makes a
    fresh API client (a Hydra `_partial_`), given `stats=`: one for each event loop `generate` runs."""

    def __init__(self, client: Callable[..., JsonLLMClient], prompt: PromptSpec, cache: ResultCache):
        self.new_client = client
        self.prompt = prompt
        self.cache = cache
        self.stats = CallStats()
        self.client = client(stats=self.stats)  # now: a missing API key stops the stage before any work
        self.name = self.client.backend
        self.model_id = self.client.model
        self.cache_hits = 0

    def key(self, req: GenRequest) -> str:
        return cache_key(
            backend=self.name,
            model_id=self.model_id,
            prompt_version=self.prompt.version,
            prompt_sha256=self.prompt.sha256,
            question=req.question,
            n=req.n,
            temperature=round(req.temperature, 6),
            seed=item_seed(req.seed, req.source_id, req.attempt),
        )

    def generate(self, requests: Sequence[GenRequest]) -> list[GenResult]:
        tasks = [
            JsonTask(
                key=self.key(r),
                prompt=self.prompt.api_prompt(r.question, r.n),
                schema=Rephrasings,
                system=self.prompt.system,
                temperature=r.temperature,
                seed=item_seed(r.seed, r.source_id, r.attempt) % (2**31),
            )
            for r in requests
        ]

        async def _run():
            try:
                return await run_json_tasks(self.client, tasks, self.cache, desc=f"rephrase[{self.name}]")
            finally:
                await self.client.aclose()
                self.client = self.new_client(stats=self.stats)  # fresh for the next loop

        done = asyncio.run(_run())
        out = []
        for r, res in zip(requests, done, strict=True):
            if res.cached:
                self.cache_hits += 1
            if res.ok:
                out.append(
                    GenResult(r, texts=list(res.value["rephrasings"])[: r.n], cached=r.n if res.cached else 0)
                )
            else:
                out.append(GenResult(r, texts=[], error=res.error))
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model_id": self.model_id,
            "base_url": self.client.base_url,
            "api_key_env": self.client.api_key_env,
        }

    def call_stats(self) -> dict[str, Any]:
        return {
            "model_calls": self.stats.requests,
            "api": self.stats.as_dict(),
            "cached_calls": self.cache_hits,
        }


def n_candidates(missing: int, factor: float, cap: int) -> int:
    return 0 if missing <= 0 else min(cap, max(missing, math.ceil(missing * factor)))
