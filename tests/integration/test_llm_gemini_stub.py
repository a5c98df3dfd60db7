"""The real google-genai client (through rbiqa.llm) against the local Gemini stub: retries, failures,
caching and resume. No network: the stub listens on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os

import pytest
from pydantic import BaseModel

from rbiqa.llm import JsonTask, LLMConfigError, ResultCache, RetryPolicy, cache_key, run_json_tasks
from rbiqa.llm.gemini import GeminiJsonClient
from tests.stubs.gemini_stub import GeminiStub

KEY = "stub-secret-key-0123456789"
FAST_RETRY = RetryPolicy(max_attempts=6, initial_s=0.01, max_s=0.05, jitter_s=0.01)


class Answer(BaseModel):
    rephrasings: list[str]


def responder(prompt: str, body: dict) -> dict:
    return {"rephrasings": [f"R({prompt})"]}


@pytest.fixture
def api_key(monkeypatch):
    monkeypatch.setenv("GOOGLE_API_KEY", KEY)
    return KEY


@pytest.fixture
def stub():
    with GeminiStub(responder=responder, timeout_sleep_s=1.2) as s:
        yield s


def client(stub, **kw) -> GeminiJsonClient:
    kw.setdefault("retry", FAST_RETRY)
    kw.setdefault("timeout_s", 0.4)
    return GeminiJsonClient("gemini-test", base_url=stub.url, **kw)


def tasks(n: int, prefix: str = "q") -> list[JsonTask]:
    return [
        JsonTask(
            key=cache_key(prompt=f"{prefix}{i}"),
            prompt=f"{prefix}{i}",
            schema=Answer,
            temperature=0.5,
            seed=i,
        )
        for i in range(n)
    ]


def run(c, ts, cache=None, **kw):
    async def go():
        try:
            return await run_json_tasks(c, ts, cache, progress=False, **kw)
        finally:
            await c.aclose()

    return asyncio.run(go())


def test_every_fault_kind_is_retried_then_succeeds(api_key, stub):
    faults = ["429", "500", "503", "timeout", "reset", "malformed", "invalid_schema", "empty", "non_json",
              "empty_body"]  # fmt: skip
    stub.script("q0", faults)
    c = client(stub, retry=RetryPolicy(max_attempts=11, initial_s=0.01, max_s=0.05, jitter_s=0.01))
    [res] = run(c, tasks(1))
    assert res.ok and res.value == {"rephrasings": ["R(q0)"]}
    assert [r.fault for r in stub.requests] == [*faults, "ok"]
    assert c.stats.requests == 11 and c.stats.retries == 10 and c.stats.retry_after_waits == 1
    assert c.stats.errors == {
        "http_429": 1,
        "http_500": 1,
        "http_503": 1,
        "timeout": 1,
        "connection": 1,
        "non_json_body": 1,
        "invalid_response": 4,  # malformed, wrong schema, empty text, and a 200 with no body (no candidates)
    }
    body = stub.requests[-1].body
    assert body["generationConfig"]["responseMimeType"] == "application/json"
    assert body["generationConfig"]["temperature"] == 0.5 and body["generationConfig"]["seed"] == 0
    assert "responseSchema" in body["generationConfig"] or "responseJsonSchema" in body["generationConfig"]


def test_many_items_under_faults_none_lost_or_duplicated(api_key, stub):
    ts = tasks(40)
    for i in range(0, 40, 3):
        stub.script(f"q{i}", ["429", "500"])
    for i in range(1, 40, 7):
        stub.script(f"q{i}", ["malformed"])
    c = client(stub, concurrency=5)
    out = run(c, ts)
    assert [r.task.prompt for r in out] == [t.prompt for t in ts]
    assert all(r.ok for r in out)
    assert [r.value["rephrasings"][0] for r in out] == [f"R(q{i})" for i in range(40)]
    # exactly one successful response per item reached the client
    assert c.stats.succeeded == 40


def test_persistent_failure_is_recorded_not_raised(api_key, stub):
    stub.default_fault = lambda prompt, n: "500" if prompt == "q1" else "ok"
    cache_dir = None
    c = client(stub, retry=RetryPolicy(max_attempts=3, initial_s=0.01, max_s=0.02, jitter_s=0.0))
    out = run(c, tasks(3), cache_dir)
    assert [r.ok for r in out] == [True, False, True]
    assert out[1].error.startswith("http_500")
    assert stub.count("q1") == 3
    assert c.stats.failed_items == 1


def test_non_retryable_client_error_fails_fast(api_key):
    def bad_request(prompt, body):
        raise AssertionError("not reached")

    with GeminiStub(responder=bad_request) as s:
        c = GeminiJsonClient("gemini-test", base_url=s.url + "/nowhere", retry=FAST_RETRY, timeout_s=2)
        [res] = run(c, tasks(1))
        assert not res.ok and "http_404" in res.error
        assert c.stats.requests == 1  # a 404 is not retried


def test_failures_are_not_cached_and_rerun_makes_zero_calls(api_key, stub, tmp_path):
    stub.default_fault = lambda prompt, n: "500" if prompt == "q2" and n < 10 else "ok"
    with ResultCache(tmp_path / "cache") as cache:
        c = client(stub, retry=RetryPolicy(max_attempts=2, initial_s=0.01, max_s=0.02, jitter_s=0.0))
        first = run(c, tasks(4), cache)
        assert [r.ok for r in first] == [True, True, False, True]
        assert len(cache) == 3
    stub.reset_counts()
    stub.default_fault = None
    with ResultCache(tmp_path / "cache") as cache:
        second = run(client(stub), tasks(4), cache)
        assert all(r.ok for r in second)
        assert [r.cached for r in second] == [True, True, False, True]
        assert stub.total == 1 and stub.count("q2") == 1  # only the failed item was asked again
    stub.reset_counts()
    with ResultCache(tmp_path / "cache") as cache:
        third = run(client(stub), tasks(4), cache)
        assert all(r.cached for r in third) and stub.total == 0
        assert [r.value for r in third] == [r.value for r in second]


def test_killed_run_resumes_without_repeating_finished_items(api_key, stub, tmp_path):
    ts = tasks(12)

    # the run "dies" (KeyboardInterrupt) right after the 5th result has been delivered
    class Killed(BaseException):
        pass

    seen = []

    def die_after_five(res):
        seen.append(res.task.prompt)
        if len(seen) == 5:
            raise Killed

    with ResultCache(tmp_path / "cache") as cache:
        with pytest.raises(Killed):
            run(client(stub, concurrency=1), ts, cache, on_result=die_after_five)
        done_before = set(seen)
    assert len(done_before) == 5
    stub.reset_counts()
    with ResultCache(tmp_path / "cache") as cache:
        out = run(client(stub, concurrency=3), ts, cache)
    assert all(r.ok for r in out)
    asked = {r.prompt for r in stub.requests}
    assert asked.isdisjoint(done_before)
    assert asked == {t.prompt for t in ts} - done_before
    assert all(stub.counts[p] == 1 for p in asked)


def test_missing_key_is_an_actionable_error(monkeypatch, stub):
    monkeypatch.delenv("MY_GEMINI_KEY", raising=False)
    with pytest.raises(LLMConfigError, match="MY_GEMINI_KEY") as e:
        GeminiJsonClient("gemini-test", api_key_env="MY_GEMINI_KEY", base_url=stub.url)
    assert "hf_local" in str(e.value)


def test_key_never_reaches_cache_or_errors(api_key, stub, tmp_path):
    stub.script("q0", ["500", "500", "500"])
    with ResultCache(tmp_path / "cache") as cache:
        c = client(stub, retry=RetryPolicy(max_attempts=3, initial_s=0.01, max_s=0.02, jitter_s=0.0))
        out = run(c, tasks(2), cache)
    assert not out[0].ok and KEY not in out[0].error
    for root, _, files in os.walk(tmp_path / "cache"):
        for f in files:
            assert KEY.encode() not in open(os.path.join(root, f), "rb").read()
    # the key does travel to the server, in the header google-genai uses
    assert stub.requests and all(r.headers.get("x-goog-api-key") == KEY for r in stub.requests)
