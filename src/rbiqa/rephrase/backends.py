"""Candidate generators for the rephrase stage: a local chat model, or a JSON API (Gemini,
OpenAI-compatible) through rbiqa.llm.

Every backend answers a list of GenRequests with one GenResult each (texts, or the error), consults the
cache first and writes each result to it as soon as it exists.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from tqdm.auto import tqdm

from rbiqa.io import sha256_file, sha256_text
from rbiqa.llm import CallStats, JsonTask, ResultCache, cache_key, make_client, run_json_tasks
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


# State of a worker process (HFLocalBackend with workers > 1): its own model and prefix-cached sampler.
_WORKER: dict[str, Any] = {}


def _local_model(model_path, dtype: str, threads: int):
    """The rephrasing model, in the stage's process or in a worker, with its torch thread count."""
    import torch

    from rbiqa.models import load_causal_lm

    torch.set_num_threads(threads)
    return load_causal_lm(model_path, dtype=dtype)


def _exit_with_parent(parent_pid: int, poll_s: float = 0.5) -> None:
    """End this worker once the stage process is gone. A SIGKILL of the stage runs no cleanup, and a spawned
    worker holds both ends of its task queue, so it never sees EOF: it would decode the batches already
    queued, for nobody, then sleep forever holding its own copy of the model."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _worker_init(
    model_path: str, dtype: str, prefix: list[dict[str, str]], threads: int, parent_pid: int
) -> None:
    from rbiqa.models import load_tokenizer
    from rbiqa.prefix_decoding import PrefixCachedSampler

    _exit_with_parent(parent_pid)
    model = _local_model(model_path, dtype, threads)
    _WORKER["sampler"] = PrefixCachedSampler(model, load_tokenizer(model_path), prefix)


def _worker_generate(kwargs: dict[str, Any]) -> list[dict[str, Any]]:
    return _WORKER["sampler"].generate(**kwargs)


class HFLocalBackend:
    """A local chat model. With `workers` > 1, batches are sampled by that many single-threaded worker
    processes, each holding the model: on a 2-core CPU two 1-thread processes decode ~1.5x faster than
    one 2-thread process (small matrices scale poorly over threads). Candidates do not depend on the
    batch or the worker they land in (per-item seeds; rbiqa.prefix_decoding), so the output is the same."""

    name = "hf_local"

    def __init__(self, rcfg: Mapping[str, Any], prompt: PromptSpec, cache: ResultCache):
        self.cfg = rcfg
        self.prompt = prompt
        self.cache = cache
        self.model_path = Path(str(rcfg["model_path"]))
        self.model_id = str(rcfg.get("model_id") or self.model_path.name)
        weights = self.model_path / "model.safetensors"
        if not weights.exists():
            raise FileNotFoundError(
                f"no rephrasing model at {self.model_path}: run `python -m rbiqa.fetch_model` (or point "
                "rephrase.model_path at a converted Hugging Face model directory)"
            )
        # the weights' hash, not the path, identifies the model in cache keys
        self.model_sha256 = sha256_file(weights)
        self._sampler = None
        self._pool = None
        self._tok = None
        self.workers = int(rcfg.get("workers") or 1)
        self.calls = 0
        self.new_tokens = 0
        self.gen_seconds = 0.0

    @property
    def _tokenizer(self):
        if self._tok is None:
            from rbiqa.models import load_tokenizer

            self._tok = load_tokenizer(self.model_path)
        return self._tok

    def _load(self):
        if self._sampler is not None:
            return self._sampler
        model = _local_model(
            self.model_path, str(self.cfg.get("dtype", "float32")), int(self.cfg.get("threads", 2))
        )
        if self.cfg.get("prefix_cache", True):
            from rbiqa.prefix_decoding import PrefixCachedSampler

            self._sampler = PrefixCachedSampler(model, self._tokenizer, self.prompt.chat_prefix())
        else:
            self._sampler = _PlainSampler(model, self._tokenizer, self.prompt)
        return self._sampler

    def _worker_pool(self):
        if self._pool is None:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            args = (
                self.model_path.as_posix(),
                str(self.cfg.get("dtype", "float32")),
                self.prompt.chat_prefix(),
                max(1, int(self.cfg.get("threads", 2)) // self.workers),
                os.getpid(),
            )
            # spawn: a forked child would inherit the parent's torch thread pools and locks
            self._pool = ProcessPoolExecutor(
                self.workers, mp.get_context("spawn"), initializer=_worker_init, initargs=args
            )
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def token_limit(self, question: str) -> int:
        """Decoding stops where the candidate could only end up `too_long`: ~max_len_ratio x the
        original's tokens (+ a little slack), and never beyond max_new_tokens."""
        n_q = len(self._tokenizer(question, add_special_tokens=False)["input_ids"])
        ratio = float(self.cfg.get("filters", {}).get("max_len_ratio", 2.0))
        return max(8, min(int(self.cfg["max_new_tokens"]), math.ceil(ratio * n_q) + 4))

    def key(self, req: GenRequest, slot: int) -> str:
        return cache_key(
            backend=self.name,
            model_sha256=self.model_sha256,
            prompt_version=self.prompt.version,
            prompt_sha256=self.prompt.sha256,
            question=req.question,
            temperature=round(req.temperature, 6),
            top_p=float(self.cfg.get("top_p", 1.0)),
            max_new_tokens=int(self.cfg["max_new_tokens"]),
            max_len_ratio=float(self.cfg.get("filters", {}).get("max_len_ratio", 2.0)),
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

        def record(items, outs) -> None:
            for (r, slot, k), out in zip(items, outs, strict=True):
                self.cache.set(k, {"text": out["text"], "n_new_tokens": out["n_new_tokens"]})
                results[id(r)].texts[slot] = out["text"]
                self.calls += 1
                self.new_tokens += out["n_new_tokens"]
            bar.update(len(items))

        if self.workers > 1 and len(batches) > 1 and self.cfg.get("prefix_cache", True):
            from concurrent.futures import as_completed

            pool = self._worker_pool()
            futures = {pool.submit(_worker_generate, kw): items for items, kw in batches}
            for fut in as_completed(futures):
                record(futures[fut], fut.result())  # each finished batch is cached at once
        else:
            sampler = self._load()
            for items, kw in batches:
                record(items, sampler.generate(**kw))
        self.gen_seconds += time.perf_counter() - t0
        bar.close()
        return [results[id(r)] for r in requests]

    def _batches(self, todo: list[tuple[GenRequest, int, str]]) -> list[tuple[list, dict[str, Any]]]:
        """(items, sampler.generate kwargs) per batch of at most batch_size; one temperature per batch
        (requests of one attempt share it)."""
        bs = int(self.cfg.get("batch_size", 16))
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
                    "top_p": float(self.cfg.get("top_p", 1.0)),
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


class _PlainSampler:
    """rbiqa.models.chat_generate, one seed per batch (used when prefix caching is switched off)."""

    def __init__(self, model, tok, prompt: PromptSpec):
        self.model, self.tok, self.prompt = model, tok, prompt

    def generate(self, users, seeds, max_new_tokens, do_sample, temperature, top_p):
        from rbiqa.models import chat_generate

        prefix = self.prompt.chat_prefix()
        return chat_generate(
            self.model,
            self.tok,
            [[*prefix, {"role": "user", "content": u}] for u in users],
            max_new_tokens=max_new_tokens if isinstance(max_new_tokens, int) else max(max_new_tokens),
            batch_size=len(users),
            do_sample=do_sample,
            temperature=temperature,
            top_p=top_p,
            seed=int(seeds[0]) if seeds else 0,
            progress=False,
        )


class JsonAPIBackend:
    """Gemini or an OpenAI-compatible server: one call returns n rephrasings as JSON."""

    def __init__(self, rcfg: Mapping[str, Any], prompt: PromptSpec, cache: ResultCache):
        self.cfg = rcfg
        self.prompt = prompt
        self.cache = cache
        self.name = str(rcfg["backend"])
        self.model_id = str(rcfg["model_id"])
        self.stats = CallStats()
        self.client = make_client(self.name, rcfg, stats=self.stats)
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
                self.client = make_client(self.name, self.cfg, stats=self.stats)  # fresh for the next loop

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
            "base_url": self.cfg.get("base_url"),
            "api_key_env": self.cfg.get("api_key_env"),
        }

    def call_stats(self) -> dict[str, Any]:
        return {
            "model_calls": self.stats.requests,
            "api": self.stats.as_dict(),
            "cached_calls": self.cache_hits,
        }


def make_backend(rcfg: Mapping[str, Any], prompt: PromptSpec, cache: ResultCache):
    backend = str(rcfg["backend"])
    if backend == "shipped":
        from rbiqa.rephrase.shipped import ShippedBackend

        return ShippedBackend(rcfg)
    if backend == "hf_local":
        return HFLocalBackend(rcfg, prompt, cache)
    if backend in ("gemini", "openai_compatible"):
        return JsonAPIBackend(rcfg, prompt, cache)
    raise ValueError(
        f"unknown rephrase.backend {backend!r}: expected shipped, hf_local, gemini or openai_compatible"
    )


def n_candidates(missing: int, factor: float, cap: int) -> int:
    return 0 if missing <= 0 else min(cap, max(missing, math.ceil(missing * factor)))
