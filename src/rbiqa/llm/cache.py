"""On-disk cache of successful LLM results, keyed by everything that determines the output.

Each result is committed (SQLite, via diskcache) the moment it arrives, so a killed run resumes where it
stopped and a finished run repeats with zero calls. Failures are never stored: a rerun must retry them.
Keys are hashes of a canonical JSON of the request, so no prompt text or secret is readable from a key,
and values hold model output only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import diskcache

from rbiqa.io import sha256_text, stable_json


def cache_key(**parts: Any) -> str:
    """sha256 of the canonical JSON of the request parts (backend, model, prompt hash, text, k, ...)."""
    return sha256_text(stable_json(parts))


class ResultCache:
    """A persistent str -> JSON-value mapping; values are stored as JSON text, never pickled."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._cache = diskcache.Cache(str(self.directory))
        self.hits = 0
        self.misses = 0
        self.writes = 0

    def get(self, key: str) -> Any | None:
        raw = self._cache.get(key)
        if raw is None:
            self.misses += 1
            return None
        self.hits += 1
        return json.loads(raw)

    def set(self, key: str, value: Any) -> None:
        if value is None:
            raise ValueError("refusing to cache None: failures are never cached")
        self._cache.set(key, json.dumps(value, ensure_ascii=False, sort_keys=True))
        self.writes += 1

    def __contains__(self, key: str) -> bool:
        return key in self._cache

    def __len__(self) -> int:
        return len(self._cache)

    def stats(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "writes": self.writes, "entries": len(self)}

    def close(self) -> None:
        self._cache.close()

    def __enter__(self) -> ResultCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
