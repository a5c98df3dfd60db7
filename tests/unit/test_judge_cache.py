"""The judge cache's format (JSON text, old pickled entries never unpickled) and its lock handling."""

from __future__ import annotations

import json
import sqlite3
import threading

import diskcache
import pytest

from rbiqa.judge.protocol import JudgeConfigError
from rbiqa.judge.runner import open_judge_cache, run_judgments
from rbiqa.llm.cache import ResultCache

from ._judge_data import eval_items, generation
from .test_judge_runner import FakeBackend

VERDICT = {"score": 1, "reasoning": "matches the reference (Rs 10 lakh)", "p_correct": 0.8125}


def rows(directory) -> list[tuple]:
    with sqlite3.connect(directory / "cache.db") as con:
        return con.execute("SELECT key, mode, value FROM Cache ORDER BY key").fetchall()


def test_values_are_json_text(tmp_path):
    with ResultCache(tmp_path) as cache:
        cache.set("k1", VERDICT)
        assert cache.get("k1") == VERDICT and cache.get("k2") is None
    ((key, mode, value),) = rows(tmp_path)
    assert key == "k1" and mode == diskcache.core.MODE_RAW and json.loads(value) == VERDICT


def test_pickled_entry_is_a_miss_never_unpickled_and_is_replaced(tmp_path):
    """A cache written before values were JSON: its pickles are not loaded (loading one can run code); the
    item is judged again and its JSON verdict replaces the pickle."""
    marker = tmp_path / "unpickled"

    class Hostile:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    items = eval_items("test_unseen", 2)
    gens = {i.item_id: generation(i, "base", "right") for i in items}
    first = FakeBackend()
    with ResultCache(tmp_path / "c") as cache:
        run_judgments(items, gens, "base", first, cache)
        keys = [k for k, *_ in rows(tmp_path / "c")]
    with diskcache.Cache(tmp_path / "c") as old:  # the old judge cache: pickled dicts
        old.set(keys[0], {"score": 1, "reasoning": "fake", "p_correct": None})
        old.set(keys[1], Hostile())
    assert {m for _, m, _ in rows(tmp_path / "c")} == {diskcache.core.MODE_PICKLE}

    again = FakeBackend()
    with ResultCache(tmp_path / "c") as cache:
        judgments, stats = run_judgments(items, gens, "base", again, cache)
        assert cache.legacy_entries == 2
    assert not marker.exists()
    assert again.calls == first.calls and stats.as_dict()["cache_hits"] == 0
    assert [j.score for j in judgments] == [1, 1]
    assert {m for _, m, _ in rows(tmp_path / "c")} == {diskcache.core.MODE_RAW}
    with ResultCache(tmp_path / "c") as cache:
        assert all(cache.get(k) is not None for k in keys) and cache.legacy_entries == 0


def test_a_held_write_lock_is_waited_out(tmp_path):
    """Another process holds the write lock past the busy timeout: the write is retried until it goes
    through, and reads never wait (WAL)."""
    with ResultCache(tmp_path, timeout=0.05) as cache:
        cache.set("before", VERDICT)
        holder = sqlite3.connect(tmp_path / "cache.db", isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN IMMEDIATE")
        release = threading.Timer(0.6, holder.execute, ("COMMIT",))
        release.start()
        try:
            assert cache.get("before") == VERDICT
            cache.set("during", VERDICT)
        finally:
            release.join()
            holder.close()
        assert cache.lock_retries >= 1 and cache.get("during") == VERDICT


def test_scope_layouts(tmp_path, monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    with open_judge_cache(tmp_path, "auto", "base") as c:
        assert c.directory == tmp_path and not c.shard
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    with open_judge_cache(tmp_path, "auto", "base") as c:
        assert c.directory == tmp_path / "arms" / "base" and c.shard
        c.set("k", VERDICT)
    with sqlite3.connect(tmp_path / "arms" / "base" / "cache.db") as con:
        assert con.execute("PRAGMA journal_mode").fetchone() == ("delete",)  # no WAL on a shared file system
    with open_judge_cache(tmp_path, "shared", "base") as c:
        assert c.directory == tmp_path and c.get("k") is None
    with open_judge_cache(tmp_path, "arm", "other", enabled=False) as c:
        assert c.get("k") is None and not (tmp_path / "arms" / "other").exists()
    with pytest.raises(JudgeConfigError, match="cache_scope"):
        open_judge_cache(tmp_path, "node", "base")
