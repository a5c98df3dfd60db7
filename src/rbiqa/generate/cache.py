"""Per-item answer cache, so a killed job resumes where it stopped and a forced rerun costs nothing.

An append-only JSONL file per (arm, eval set) under data/cache/generate/. Each finished batch is appended
and fsynced before the next starts, so at most one batch is lost when a job is killed. A row's key hashes
everything its answer depends on (model weights, adapter, dtype/quantization, decoding settings and the
full chat messages, which include the system prompt, few-shot examples and retrieved passages), so a
change to any of them misses the cache instead of serving a stale answer. Failed items are not cached:
the next run tries them again. The file lives outside results/ so DVC never tracks a half-finished run.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rbiqa import paths as P
from rbiqa.io import sha256_text, stable_json

log = logging.getLogger(__name__)

CACHE_DIR = P.CACHE / "generate"


def cache_path(arm: str, eval_set: str) -> Path:
    return CACHE_DIR / arm / f"{eval_set}.partial.jsonl"


def nll_cache_path(arm: str, eval_set: str) -> Path:
    """Teacher-forced reference losses (rbiqa.generate.reference_loss), beside the answers."""
    return CACHE_DIR / arm / f"{eval_set}.reference_nll.jsonl"


def item_key(fingerprint: str, messages: Any) -> str:
    return sha256_text(stable_json({"run": fingerprint, "messages": messages}))


class ItemCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.rows: dict[str, dict] = {}
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        bad = 0
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                try:
                    row = json.loads(line)
                    self.rows[row["key"]] = row
                except (json.JSONDecodeError, KeyError, TypeError):
                    bad += 1  # a line cut short by a kill: that item is simply generated again
        log.info("cache %s: %d finished items, %d unreadable lines", self.path, len(self.rows), bad)

    def get(self, key: str) -> dict | None:
        return self.rows.get(key)

    def add(self, rows: Iterable[dict]) -> None:
        rows = list(rows)
        if not rows:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+b") as f:
            torn = False
            if f.seek(0, os.SEEK_END):
                f.seek(-1, os.SEEK_END)
                torn = f.read(1) != b"\n"
            # end a line a kill cut short, or the first new row would be glued to it and lost
            payload = ("\n" if torn else "") + "".join(
                json.dumps(row, ensure_ascii=False) + "\n" for row in rows
            )
            f.write(payload.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        for row in rows:
            self.rows[row["key"]] = row
