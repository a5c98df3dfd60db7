"""Batch planning and the per-item cache, without a model."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rbiqa.generate.cache import ItemCache, item_key
from rbiqa.generate.runner import Job, balanced_batches, run_jobs


@given(n=st.integers(0, 300), max_size=st.integers(1, 64))
def test_balanced_batches_partition_in_order(n, max_size):
    jobs = list(range(n))
    batches = balanced_batches(jobs, max_size)
    assert [j for b in batches for j in b] == jobs
    assert len(batches) == -(-n // max_size)  # as few batches as max_size allows
    sizes = [len(b) for b in batches]
    assert all(0 < s <= max_size for s in sizes)
    assert not sizes or max(sizes) - min(sizes) <= 1


def test_cache_survives_a_torn_line_and_keeps_appending(tmp_path):
    path = tmp_path / "c.jsonl"
    c = ItemCache(path)
    c.add([{"key": "a", "answer": "A"}])
    with open(path, "a") as f:
        f.write('{"key": "b", "ans')  # killed mid-write
    c2 = ItemCache(path)
    assert c2.get("a")["answer"] == "A" and c2.get("b") is None
    c2.add([{"key": "c", "answer": "C"}])
    lines = path.read_text().splitlines()
    assert json.loads(lines[-1]) == {"key": "c", "answer": "C"}
    assert ItemCache(path).get("c")["answer"] == "C"


def test_item_key_depends_on_run_and_messages():
    m = [{"role": "user", "content": "q"}]
    assert item_key("run1", m) == item_key("run1", [dict(x) for x in m])
    assert item_key("run1", m) != item_key("run2", m)
    assert item_key("run1", m) != item_key("run1", [{"role": "user", "content": "q "}])


def fake_generate(calls):
    def gen(convs, limits):
        calls.append(len(convs))
        return [{"text": c[-1]["content"].upper(), "n_prompt_tokens": 3, "n_new_tokens": 2} for c in convs]

    return gen


def test_identical_prompts_are_answered_once(tmp_path):
    jobs = [
        Job(f"i{i}", "same" if i < 3 else f"k{i}", [{"role": "user", "content": f"q{min(i, 3)}"}])
        for i in range(5)
    ]
    calls: list[int] = []
    rows, stats = run_jobs(
        jobs, fake_generate(calls), ItemCache(tmp_path / "c.jsonl"), batch_size=8, progress=False
    )
    assert calls == [3] and stats.n_generated == 3 and set(rows) == {"same", "k3", "k4"}


def test_wrong_number_of_outputs_is_an_item_error(tmp_path):
    def broken(convs, limits):
        return []

    jobs = [Job("i0", "k0", [{"role": "user", "content": "q"}])]
    rows, stats = run_jobs(jobs, broken, ItemCache(tmp_path / "c.jsonl"), batch_size=2, progress=False)
    assert rows == {} and "returned 0 outputs" in stats.errors["k0"]


def test_batch_size_must_be_positive(tmp_path):
    with pytest.raises(ValueError):
        run_jobs([], fake_generate([]), ItemCache(tmp_path / "c.jsonl"), batch_size=0)
