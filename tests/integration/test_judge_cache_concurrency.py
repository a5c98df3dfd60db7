"""Several judge jobs (one per arm, as `snakemake --cores all` runs them) writing one cache at the same time.

Each job must finish, with no "database is locked"; the cache must hold exactly the unique keys with their
JSON verdicts; and a rerun must find every one of them.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rbiqa import paths as P
from rbiqa.config import compose
from rbiqa.io import read_jsonl
from rbiqa.judge.stage import run as judge_main
from rbiqa.llm.cache import ResultCache
from tests.integration._judge_cache_writer import key, keys_of, verdict
from tests.unit._judge_data import eval_items, generation, write_inputs

REPO = Path(__file__).resolve().parents[2]
LOCK_ERRORS = ("database is locked", "Timeout", "Traceback")


def spawn(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "RBIQA_CONF_DIR": str(REPO / "conf"),
        "PYTHONPATH": os.pathsep.join((str(REPO / "src"), str(REPO))),  # this checkout's code, as in run_cmd
        "PYTHONUNBUFFERED": "1",
    }
    return subprocess.Popen(
        [sys.executable, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_writers_racing_on_one_cache(tmp_path):
    """4 processes open a fresh cache at the same moment and write 200 verdicts each, half of them keys the
    next process also writes (800 writes, 500 keys)."""
    n_proc, n = 4, 200
    directory, go = tmp_path / "cache", tmp_path / "go"
    procs = [
        spawn(["-m", "tests.integration._judge_cache_writer", str(directory), str(w), str(n), str(go)], REPO)
        for w in range(n_proc)
    ]
    for p in procs:
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
    go.touch()
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert not any(e in err for e in LOCK_ERRORS), err
    figures = [json.loads(out) for out, _ in outs]
    print(
        f"\n{n_proc} writers, {sum(f['writes'] for f in figures)} writes: slowest "
        f"{max(f['s'] for f in figures):.2f} s, lock retries {sum(f['lock_retries'] for f in figures)}"
    )

    expected = {key(i): verdict(i) for w in range(n_proc) for i in keys_of(w, n)}
    assert len(expected) == n + (n_proc - 1) * n // 2
    with sqlite3.connect(directory / "cache.db") as con:
        stored = {k: json.loads(v) for k, v in con.execute("SELECT key, value FROM Cache")}
    assert stored == expected
    with ResultCache(directory) as cache:  # the rerun: every key a hit
        assert len(cache) == len(expected)
        assert {k: cache.get(k) for k in expected} == expected


ARMS = ("base", "base_fewshot", "ft_k0")


def write_project(root: Path) -> None:
    """One eval set; every arm gives the same answers on the first half of the items, its own on the rest."""
    (root / P.stamp("judge")).parent.mkdir(parents=True, exist_ok=True)
    (root / P.stamp("judge")).write_text("judge: {}\n", encoding="utf-8")
    items = eval_items("test_unseen", 12)
    for arm in ARMS:
        answers = [
            item.reference if k < 6 else f"For {arm}: the answer to item {k} is {k * 3} per cent."
            for k, item in enumerate(items)
        ]
        write_inputs(
            root,
            arm,
            "test_unseen",
            items,
            [generation(i, arm, a) for i, a in zip(items, answers, strict=True)],
        )


OVERRIDES = ["+eval_set=test_unseen", "judge.cache_scope=shared"]


@pytest.mark.slow
def test_concurrent_judge_jobs_match_sequential_ones(tmp_path, monkeypatch):
    """The reference judge for 3 arms at once against one cache: the same judgments as one arm after
    another, the cache holds each shared answer once, and a rerun of every arm makes no judge call."""
    seq, par = tmp_path / "sequential", tmp_path / "concurrent"
    write_project(seq)
    write_project(par)

    t0 = time.perf_counter()
    procs = [spawn(["-m", "rbiqa.judge", f"arm={arm}", *OVERRIDES], par) for arm in ARMS]
    outs = [p.communicate(timeout=300) for p in procs]
    wall = time.perf_counter() - t0
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
        assert "database is locked" not in err, err[-3000:]

    monkeypatch.chdir(seq)
    for arm in ARMS:
        judge_main(compose([f"arm={arm}", *OVERRIDES]))
    for arm in ARMS:
        assert read_jsonl(par / P.judgments(arm, "test_unseen")) == read_jsonl(
            seq / P.judgments(arm, "test_unseen")
        )

    with ResultCache(par / P.CACHE / "judge") as cache:
        assert len(cache) == 6 + 6 * len(ARMS)  # the shared answers once, each arm's own ones
    monkeypatch.chdir(par)
    for arm in ARMS:
        counts = judge_main(compose([f"arm={arm}", *OVERRIDES]))["test_unseen"]["counts"]
        assert counts["cache_hits"] == 12 and counts["judge_calls"] == 0
    print(f"\n{len(ARMS)} concurrent judge jobs: {wall:.1f} s wall")
