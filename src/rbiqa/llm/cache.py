"""On-disk cache of successful LLM results (rephrasings, judge verdicts), keyed by everything that
determines the output.

Each result is committed (SQLite, via diskcache) the moment it arrives, so a killed run resumes where it
stopped and a finished run repeats with zero calls. Failures are never stored: a rerun must retry them.
Keys are hashes of a canonical JSON of the request, so no prompt text or secret is readable from a key,
and values hold model output only.

Values are JSON text: any SQLite client can read them, and reading one runs no code. Judge caches written
before that hold pickled values. Such an entry is never unpickled (a pickle can run code): it reads as a
miss, its item is asked again, and the JSON value replaces it.

Several jobs may open one cache at once (the judge's shared layout: one database for every arm's job), and
SQLite is only as safe as its file locks. SQLite lets one writer in at a time, and in WAL mode readers
never wait. A writer waits up to `timeout` s for the lock (SQLite's busy timeout); what still fails as
locked is retried with backoff (SQLite reports "busy" at once where waiting could deadlock, and diskcache
sets a cache up with no busy timeout). This needs working POSIX locks and WAL's shared-memory index, i.e.
every job on one host: SQLite's locks are unreliable over NFS and Lustre, and WAL does not work across
hosts at all (https://www.sqlite.org/wal.html, https://www.sqlite.org/useovernet.html).

A `shard` is a database that one process at a time opens, possibly from different hosts of a shared file
system in turn (the judge's per-arm layout): it uses a rollback journal instead of WAL (no shared-memory
index) and syncs every commit.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

import diskcache
import tenacity
from diskcache.core import MODE_PICKLE

from rbiqa.io import sha256_text, stable_json

log = logging.getLogger(__name__)

LOCK_TIMEOUT_S = 10.0  # SQLite busy timeout: a write takes milliseconds, so a wait this long means contention
LOCK_RETRY_S = 120.0  # then retry with backoff this long before failing the job
SHARD_SETTINGS = {"sqlite_journal_mode": "delete", "sqlite_synchronous": 2}  # FULL: no WAL, fsync per commit
_LEGACY = object()  # a pickled value, from before values were JSON


def cache_key(**parts: Any) -> str:
    """sha256 of the canonical JSON of the request parts (backend, model, prompt hash, text, k, ...)."""
    return sha256_text(stable_json(parts))


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
    cache: ResultCache = state.args[0]
    cache.lock_retries += 1
    log.warning(
        "cache %s: SQLite lock not granted (%s), retry %d",
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


class ResultCache:
    """A persistent str -> JSON-value mapping; values are stored as JSON text, never pickled.

    `enabled=False` gives a cache that stores nothing and always misses (`judge.cache=false`); `shard`
    selects the one-process-at-a-time settings described in the module docstring."""

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
        self.hits = 0
        self.misses = 0
        self.writes = 0
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
    def get(self, key: str) -> Any | None:
        raw = self._cache.get(key) if self._cache is not None else None
        if raw is _LEGACY:
            self.legacy_entries += 1
            raw = None
        if raw is None:
            self.misses += 1
            return None
        self.hits += 1
        return json.loads(raw)

    @_retry_locked
    def set(self, key: str, value: Any) -> None:
        if value is None:
            raise ValueError("refusing to cache None: failures are never cached")
        if self._cache is not None:
            self._cache.set(key, json.dumps(value, ensure_ascii=False, sort_keys=True))
            self.writes += 1

    def __contains__(self, key: str) -> bool:
        return self._cache is not None and key in self._cache

    def __len__(self) -> int:
        return len(self._cache) if self._cache is not None else 0

    def stats(self) -> dict[str, int]:
        """What this process did with the cache (the rephrase report's `cache`)."""
        return {"hits": self.hits, "misses": self.misses, "writes": self.writes, "entries": len(self)}

    def describe(self) -> dict[str, Any]:
        """Where the cache is and how it was opened, with the legacy entries and lock retries met (the
        judge manifest's `cache`)."""
        return {
            "enabled": self.enabled,
            "dir": self.directory.as_posix(),
            "shard": self.shard,
            "legacy_entries": self.legacy_entries,
            "lock_retries": self.lock_retries,
        }

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()

    def __enter__(self) -> ResultCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
