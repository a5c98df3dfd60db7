"""On-disk cache of successful judgments, so a rerun (or a resumed, killed run) repeats no call.

Keys hash everything that determines a verdict: backend, judge model, prompt hash, question,
reference and answer. Only successes are stored; a failure is recorded as missing in the output and
is retried on the next run. Each success is written the moment it arrives, so a kill loses at most
the calls in flight.

Values are JSON text, as in rbiqa.llm.cache: any SQLite client can read them, and reading one runs no code.
Caches written before that hold pickled values. Such an entry is never unpickled (a pickle can run code): it
reads as a miss, its item is judged again, and the JSON verdict replaces it.

Several judge jobs, one per arm, run at once, and SQLite (under diskcache) is only as safe as its file locks.
Hence two layouts (`judge.cache_scope`):

- shared: one database for every arm, so an answer two arms share is judged once. SQLite lets one writer in at
  a time, and in WAL mode readers never wait. A writer waits up to `timeout` s for the lock (SQLite's busy
  timeout); what still fails as locked is retried with backoff (SQLite reports "busy" at once where waiting
  could deadlock, and diskcache sets a cache up with no busy timeout). This needs working POSIX locks and WAL's
  shared-memory index, i.e. every job on one host: SQLite's locks are unreliable over NFS and Lustre, and WAL
  does not work across hosts at all (https://www.sqlite.org/wal.html, https://www.sqlite.org/useovernet.html).
- arm: one database per arm, which only that arm's job opens (Snakemake runs one judge job per arm). No two
  processes use the same file at once, so jobs on different hosts of a shared file system never depend on
  cross-host locking, and a rerun of the arm on any node finds its verdicts. As successive jobs may run on
  different hosts, a shard uses a rollback journal instead of WAL (no shared-memory index) and syncs every
  commit.

`auto` (the default) picks arm inside a SLURM job and shared elsewhere.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from pathlib import Path
from typing import Any

import diskcache
import tenacity
from diskcache.core import MODE_PICKLE

from rbiqa.io import sha256_text, stable_json
from rbiqa.judge.protocol import JudgeConfigError

log = logging.getLogger(__name__)

SCOPES = ("auto", "shared", "arm")
LOCK_TIMEOUT_S = 10.0  # SQLite busy timeout: a write takes milliseconds, so a wait this long means contention
LOCK_RETRY_S = 120.0  # then retry with backoff this long before failing the job
SHARD_SETTINGS = {"sqlite_journal_mode": "delete", "sqlite_synchronous": 2}  # FULL: no WAL, fsync per commit
_LEGACY = object()  # a pickled value, from before values were JSON


def judgment_key(
    backend: str, model: str, prompt_hash: str | None, question: str, reference: str | None, answer: str
) -> str:
    return sha256_text(
        stable_json(
            {
                "backend": backend,
                "model": model,
                "prompt_hash": prompt_hash,
                "question": question,
                "reference": reference,
                "answer": answer,
            }
        )
    )


class _JSONTextDisk(diskcache.Disk):
    """diskcache's Disk, except that it hands back a pickled value unread instead of unpickling it."""

    def fetch(self, mode, filename, value, read):
        if mode == MODE_PICKLE:
            return _LEGACY
        return super().fetch(mode, filename, value, read)


def _is_lock_error(exc: BaseException) -> bool:
    # diskcache raises Timeout when a write transaction could not start within the busy timeout
    return isinstance(exc, diskcache.Timeout) or (
        isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)
    )


def _count_retry(state: tenacity.RetryCallState) -> None:
    cache: JudgeCache = state.args[0]
    cache.lock_retries += 1
    log.warning(
        "judge cache %s: SQLite lock not granted (%s), retry %d",
        cache.directory,
        type(state.outcome.exception()).__name__,
        state.attempt_number,
    )


_retry_locked = tenacity.retry(
    retry=tenacity.retry_if_exception(_is_lock_error),
    wait=tenacity.wait_random_exponential(multiplier=0.05, max=2.0),
    stop=tenacity.stop_after_delay(LOCK_RETRY_S),
    before_sleep=_count_retry,
    reraise=True,
)


class JudgeCache:
    """`shard`: a database that one process at a time opens (the per-arm layout), see the module docstring."""

    def __init__(
        self,
        directory: str | Path,
        enabled: bool = True,
        *,
        shard: bool = False,
        timeout: float = LOCK_TIMEOUT_S,
    ) -> None:
        self.directory = Path(directory)
        self.enabled = enabled
        self.shard = shard
        self.legacy_entries = 0
        self.lock_retries = 0
        self._cache = None
        if enabled:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._cache = self._open(timeout)

    @_retry_locked
    def _open(self, timeout: float) -> diskcache.Cache:
        settings = SHARD_SETTINGS if self.shard else {}
        return diskcache.Cache(
            str(self.directory), timeout=timeout, disk=_JSONTextDisk, size_limit=2**34, **settings
        )

    @_retry_locked
    def get(self, key: str) -> dict[str, Any] | None:
        raw = self._cache.get(key) if self._cache is not None else None
        if raw is _LEGACY:
            self.legacy_entries += 1
            return None
        return None if raw is None else json.loads(raw)

    @_retry_locked
    def put(self, key: str, value: dict[str, Any]) -> None:
        if self._cache is not None:
            self._cache.set(key, json.dumps(value, ensure_ascii=False, sort_keys=True))

    def stats(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "dir": self.directory.as_posix(),
            "shard": self.shard,
            "legacy_entries": self.legacy_entries,
            "lock_retries": self.lock_retries,
        }

    def __len__(self) -> int:
        return len(self._cache) if self._cache is not None else 0

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()

    def __enter__(self) -> JudgeCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_judge_cache(root: str | Path, scope: str, arm: str, enabled: bool = True) -> JudgeCache:
    """The cache one arm's judge job uses: `root` itself (shared) or `root/arms/<arm>` (arm).

    `auto` looks for SLURM_JOB_ID, which SLURM sets in every job and the executor plugin's job step keeps: a
    job on a cluster may share the file system with jobs on other hosts, a local run shares one host.
    """
    if scope not in SCOPES:
        raise JudgeConfigError(f"judge.cache_scope must be one of {', '.join(SCOPES)}, not {scope!r}")
    if scope == "auto":
        scope = "arm" if os.environ.get("SLURM_JOB_ID") else "shared"
    cache = (
        JudgeCache(Path(root) / "arms" / arm, enabled, shard=True)
        if scope == "arm"
        else JudgeCache(root, enabled)
    )
    log.info("judge cache (%s): %s", scope if enabled else "disabled", cache.directory)
    return cache
