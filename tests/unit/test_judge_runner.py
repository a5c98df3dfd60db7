"""Runner accounting: one judgment per item, missing never 0, successes cached, reruns call nothing."""

from __future__ import annotations

import pytest

from rbiqa.judge.protocol import Outcome
from rbiqa.judge.runner import run_judgments
from rbiqa.llm.cache import ResultCache

from ._judge_data import eval_items, generation


class FakeBackend:
    """Scores by answer text; 'FAIL' answers fail; counts calls per item."""

    name = "fake"
    model_id = "fake-1"

    def __init__(self, answer_twice: bool = False, skip: set[str] | None = None):
        self.calls: list[str] = []
        self.answer_twice = answer_twice
        self.skip = skip or set()

    def prompt_hash(self, kind):
        return f"hash-{kind}"

    def judge(self, tasks, on_result):
        for t in tasks:
            self.calls.append(t.item_id)
            if t.item_id in self.skip:
                continue
            if "FAIL" in t.answer:
                on_result(t, Outcome.failed("judge exploded"))
            else:
                on_result(t, Outcome(score=int("right" in t.answer), reasoning="fake"))
            if self.answer_twice:
                on_result(t, Outcome(score=1))


@pytest.fixture
def data():
    items = eval_items("test_unseen", 6)
    answers = ["right", "wrong", None, "FAIL", "right", "wrong"]
    gens = {
        i.item_id: generation(i, "base", a, error="CUDA OOM" if a is None else None)
        for i, a in zip(items, answers, strict=True)
    }
    return items, gens


def test_missing_is_never_zero_and_nothing_is_lost(tmp_path, data):
    items, gens = data
    backend = FakeBackend()
    with ResultCache(tmp_path / "cache") as cache:
        js, stats = run_judgments(items, gens, "base", backend, cache)
    assert [j.item_id for j in js] == [i.item_id for i in items]
    by_id = {j.item_id: j for j in js}
    gen_failed, judge_failed = by_id["it002"], by_id["it003"]
    assert gen_failed.status == "missing" and gen_failed.score is None
    assert gen_failed.error.startswith("generation failed: CUDA OOM")
    assert (
        judge_failed.status == "missing" and judge_failed.score is None and "exploded" in judge_failed.error
    )
    assert [by_id[k].score for k in ("it000", "it001", "it004", "it005")] == [1, 0, 1, 0]
    assert "it002" not in backend.calls  # a failed generation is never sent to the judge
    counts = stats.as_dict()
    assert counts["ok"] == 4 and counts["missing"] == 2 and counts["generation_failed"] == 1
    assert counts["judge_failed"] == 1 and counts["judge_calls"] == 5


def test_rerun_hits_cache_and_retries_only_failures(tmp_path, data):
    items, gens = data
    with ResultCache(tmp_path / "cache") as cache:
        run_judgments(items, gens, "base", FakeBackend(), cache)
    second = FakeBackend()
    with ResultCache(tmp_path / "cache") as cache:
        js, stats = run_judgments(items, gens, "base", second, cache)
    assert second.calls == ["it003"]  # only the failed judgment is retried
    assert stats.as_dict()["cache_hits"] == 4
    assert [j.score for j in js] == [1, 0, None, None, 1, 0]


def test_cache_key_depends_on_prompt_and_model(tmp_path, data):
    items, gens = data
    with ResultCache(tmp_path / "cache") as cache:
        run_judgments(items, gens, "base", FakeBackend(), cache)
        other = FakeBackend()
        other.model_id = "fake-2"
        run_judgments(items, gens, "base", other, cache)
    assert len(other.calls) == 5


def test_cache_disabled_calls_again(tmp_path, data):
    items, gens = data
    for _ in range(2):
        backend = FakeBackend()
        with ResultCache(tmp_path / "cache", enabled=False) as cache:
            run_judgments(items, gens, "base", backend, cache)
        assert len(backend.calls) == 5


def test_backend_answering_twice_is_an_error(tmp_path, data):
    items, gens = data
    with ResultCache(tmp_path / "cache") as cache, pytest.raises(RuntimeError, match="twice"):
        run_judgments(items, gens, "base", FakeBackend(answer_twice=True), cache)


def test_unanswered_item_is_missing_not_dropped(tmp_path, data):
    items, gens = data
    with ResultCache(tmp_path / "cache") as cache:
        js, _ = run_judgments(items, gens, "base", FakeBackend(skip={"it004"}), cache)
    j = {j.item_id: j for j in js}["it004"]
    assert j.status == "missing" and j.score is None and "no outcome" in j.error


def test_item_without_generation_row_is_missing(tmp_path, data):
    items, gens = data
    del gens["it005"]
    with ResultCache(tmp_path / "cache") as cache:
        js, stats = run_judgments(items, gens, "base", FakeBackend(), cache)
    assert len(js) == len(items)
    assert js[-1].status == "missing" and "no generation row" in js[-1].error
    assert stats.as_dict()["no_generation"] == 1


def test_unanswerable_items_use_abstention_kind(tmp_path):
    items = eval_items("unanswerable", 2)
    gens = {i.item_id: generation(i, "base", "I do not know") for i in items}
    seen = []

    class Spy(FakeBackend):
        def judge(self, tasks, on_result):
            seen.extend(t.kind for t in tasks)
            super().judge(tasks, on_result)

    with ResultCache(tmp_path / "cache") as cache:
        js, _ = run_judgments(items, gens, "base", Spy(), cache)
    assert seen == ["abstention", "abstention"]
    assert {j.prompt_hash for j in js} == {"hash-abstention"}
