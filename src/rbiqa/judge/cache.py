"""On-disk cache of successful judgments, so a rerun (or a resumed, killed run) repeats no call.

Keys hash everything that determines a verdict: backend, judge model, prompt hash, question,
reference and answer. Only successes are stored; a failure is recorded as missing in the output and
is retried on the next run. Each success is written the moment it arrives, so a kill loses at most
the calls in flight. diskcache (sqlite) is safe for several judge jobs writing at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rbiqa.io import sha256_text, stable_json


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


class JudgeCache:
    def __init__(self, directory: str | Path, enabled: bool = True) -> None:
        self.enabled = enabled
        self._cache = None
        if enabled:
            import diskcache

            Path(directory).mkdir(parents=True, exist_ok=True)
            self._cache = diskcache.Cache(str(directory), size_limit=2**34)

    def get(self, key: str) -> dict[str, Any] | None:
        return self._cache.get(key) if self._cache is not None else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        if self._cache is not None:
            self._cache.set(key, value)

    def __len__(self) -> int:
        return len(self._cache) if self._cache is not None else 0

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()

    def __enter__(self) -> JudgeCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
