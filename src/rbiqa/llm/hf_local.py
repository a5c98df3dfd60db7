"""A local chat model as an LLM backend: a converted Hugging Face model directory (what fetch_model writes),
loaded with rbiqa.models on first use.

Two ways of asking it, one per user:
- `chat`: batched generation of whole conversations (rbiqa.models.chat_generate), greedy by default; the
  judge asks it this way.
- `sample`: seeded sampling of many user turns after one shared prefix (rbiqa.prefix_decoding encodes the
  prefix once), optionally spread over worker processes; the rephraser asks it this way. With `workers`
  > 1, batches are sampled by that many single-threaded worker processes, each holding the model: on a
  2-core CPU two 1-thread processes decode ~1.5x faster than one 2-thread process (small matrices scale
  poorly over threads). Outputs do not depend on the batch or the worker they land in (per-item seeds), so
  they are the same either way.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

Messages = list[dict[str, str]]

# State of a worker process (HFLocalChatModel.sample with workers > 1): its own model and sampler.
_WORKER: dict[str, Any] = {}


def _load_model(model_path, dtype: str, threads: int | None, load_in_4bit: bool = False):
    """The model, in this process or in a worker, with its torch thread count when one is given."""
    from rbiqa.models import load_causal_lm

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    quant = {"load_in_4bit": True} if load_in_4bit else None
    return load_causal_lm(model_path, dtype=dtype, quant=quant)


def _exit_with_parent(parent_pid: int, poll_s: float = 0.5) -> None:
    """End this worker once the parent process is gone. A SIGKILL of the parent runs no cleanup, and a
    spawned worker holds both ends of its task queue, so it never sees EOF: it would decode the batches
    already queued, for nobody, then sleep forever holding its own copy of the model."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _worker_init(model_path: str, dtype: str, prefix: Messages, threads: int, parent_pid: int) -> None:
    from rbiqa.models import load_tokenizer
    from rbiqa.prefix_decoding import PrefixCachedSampler

    _exit_with_parent(parent_pid)
    model = _load_model(model_path, dtype, threads)
    _WORKER["sampler"] = PrefixCachedSampler(model, load_tokenizer(model_path), prefix)


def _worker_generate(kwargs: dict[str, Any]) -> list[dict[str, Any]]:
    return _WORKER["sampler"].generate(**kwargs)


class _PlainSampler:
    """rbiqa.models.chat_generate, one seed per batch (used when prefix caching is switched off)."""

    def __init__(self, model, tok, prefix: Messages):
        self.model, self.tok, self.prefix = model, tok, prefix

    def generate(self, users, seeds, max_new_tokens, do_sample, temperature, top_p):
        from rbiqa.models import chat_generate

        return chat_generate(
            self.model,
            self.tok,
            [[*self.prefix, {"role": "user", "content": u}] for u in users],
            max_new_tokens=max_new_tokens if isinstance(max_new_tokens, int) else max(max_new_tokens),
            batch_size=len(users),
            do_sample=do_sample,
            temperature=temperature,
            top_p=top_p,
            seed=int(seeds[0]) if seeds else 0,
            progress=False,
        )


class HFLocalChatModel:
    """`threads`: torch intra-op threads, set before loading (None leaves torch's default), split over the
    `workers` of `sample`. `model`/`tokenizer`: already loaded objects, used instead of `model_path`."""

    backend = "hf_local"

    def __init__(
        self,
        model_path: str | Path,
        model_id: str | None = None,
        dtype: str = "float32",
        threads: int | None = None,
        workers: int | None = 1,
        load_in_4bit: bool = False,
        model=None,
        tokenizer=None,
    ) -> None:
        self.model_path = Path(str(model_path))
        self.model_id = str(model_id or self.model_path.name)
        self.dtype = str(dtype)
        self.threads = None if threads is None else int(threads)
        self.workers = int(workers or 1)
        self.load_in_4bit = bool(load_in_4bit)
        self._model, self._tok = model, tokenizer
        self._sampler = None
        self._pool = None

    @property
    def tokenizer(self):
        if self._tok is None:
            from rbiqa.models import load_tokenizer

            self._tok = load_tokenizer(self.model_path)
        return self._tok

    @property
    def model(self):
        if self._model is None:
            self._model = _load_model(self.model_path, self.dtype, self.threads, self.load_in_4bit)
        return self._model

    def chat(self, conversations: Sequence[Messages], **generate_kw: Any) -> list[dict[str, Any]]:
        """rbiqa.models.chat_generate over whole conversations ({"text", "n_new_tokens", ...} each)."""
        from rbiqa.models import chat_generate

        return chat_generate(self.model, self.tokenizer, list(conversations), **generate_kw)

    def sample(
        self, batches: Sequence[dict[str, Any]], prefix: Messages, prefix_cache: bool = True
    ) -> Iterator[tuple[int, list[dict[str, Any]]]]:
        """(index, outputs) of each batch, as it finishes. A batch is the keyword arguments of
        PrefixCachedSampler.generate (users, seeds, max_new_tokens, do_sample, temperature, top_p); every
        batch shares `prefix`. Worker processes sample when there are several workers and batches and the
        prefix is cached; otherwise this process samples the batches in order."""
        if self.workers > 1 and len(batches) > 1 and prefix_cache:
            from concurrent.futures import as_completed

            pool = self._worker_pool(prefix)
            futures = {pool.submit(_worker_generate, kw): i for i, kw in enumerate(batches)}
            for fut in as_completed(futures):
                yield futures[fut], fut.result()
        else:
            sampler = self._local_sampler(prefix, prefix_cache)
            for i, kw in enumerate(batches):
                yield i, sampler.generate(**kw)

    def _local_sampler(self, prefix: Messages, prefix_cache: bool):
        if self._sampler is None:
            if prefix_cache:
                from rbiqa.prefix_decoding import PrefixCachedSampler

                self._sampler = PrefixCachedSampler(self.model, self.tokenizer, prefix)
            else:
                self._sampler = _PlainSampler(self.model, self.tokenizer, prefix)
        return self._sampler

    def _worker_pool(self, prefix: Messages):
        if self._pool is None:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            args = (
                self.model_path.as_posix(),
                self.dtype,
                prefix,
                max(1, (self.threads or 1) // self.workers),
                os.getpid(),
            )
            # spawn: a forked child would inherit the parent's torch thread pools and locks
            self._pool = ProcessPoolExecutor(
                self.workers, mp.get_context("spawn"), initializer=_worker_init, initargs=args
            )
        return self._pool

    def close(self) -> None:
        """Join the worker processes, if any (their CPU time then counts in RUSAGE_CHILDREN)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
