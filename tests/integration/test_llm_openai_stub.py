"""The OpenAI-compatible client against a local chat-completions stub: same retry/JSON contract."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel

from rbiqa.llm import JsonTask, RetryPolicy, cache_key, run_json_tasks
from rbiqa.llm.openai_compatible import OpenAICompatibleJsonClient
from tests.stubs.gemini_stub import OpenAIStub


class Verdict(BaseModel):
    score: int


def run(c, ts):
    async def go():
        try:
            return await run_json_tasks(c, ts, None, progress=False)
        finally:
            await c.aclose()

    return asyncio.run(go())


@pytest.fixture
def stub():
    with OpenAIStub(responder=lambda prompt, body: {"score": len(prompt)}, timeout_sleep_s=1.0) as s:
        yield s


def make(stub, **kw):
    return OpenAICompatibleJsonClient(
        "served-model", base_url=stub.url + "/v1", timeout_s=0.4,
        retry=RetryPolicy(max_attempts=6, initial_s=0.01, max_s=0.05, jitter_s=0.01), **kw,
    )  # fmt: skip


def test_faults_retried_and_request_shape(stub, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-stub-123456")
    faults = ["429", "500", "timeout", "reset", "malformed", "invalid_schema", "empty", "non_json",
              "empty_body"]  # fmt: skip
    stub.script("abc", faults)
    c = make(stub, api_key_env="OPENAI_API_KEY")
    c.retry = RetryPolicy(max_attempts=10, initial_s=0.01, max_s=0.05, jitter_s=0.01)
    [res] = run(c, [JsonTask(cache_key(p="abc"), "abc", Verdict, system="be terse", temperature=0.0, seed=3)])
    assert res.ok and res.value == {"score": 3}
    assert [r.fault for r in stub.requests] == [*faults, "ok"]
    assert c.stats.errors == {"http_429": 1, "http_500": 1, "timeout": 1, "connection": 1,
                              "invalid_response": 3, "non_json_body": 2}  # fmt: skip
    body = stub.requests[-1].body
    assert body["model"] == "served-model" and body["seed"] == 3
    assert body["messages"][0] == {"role": "system", "content": "be terse"}
    assert body["response_format"]["type"] == "json_schema"


def test_many_items_exactly_once(stub):
    for i in range(0, 20, 4):
        stub.script(f"item-{i}-", ["503"])
    c = make(stub, concurrency=4)
    ts = [JsonTask(cache_key(i=i), f"item-{i}-", Verdict) for i in range(20)]
    out = run(c, ts)
    assert [r.value["score"] for r in out] == [len(f"item-{i}-") for i in range(20)]
    assert c.stats.succeeded == 20


def test_key_optional_for_local_servers(stub, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    c = make(stub, api_key_env="OPENAI_API_KEY", api_key_required=False)
    [res] = run(c, [JsonTask("k", "x", Verdict)])
    assert res.ok
