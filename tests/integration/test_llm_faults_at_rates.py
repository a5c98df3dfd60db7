"""API faults injected at seeded random rates, at stage level: rephrase and judge, each on Gemini and on an
OpenAI-compatible server (the real clients against the local stubs).

About half of all requests fail (DEFAULT_FAULT_RATES: 30% 429 with Retry-After, 10% 5xx, 5% malformed
JSON, 2% dropped connections or timeouts, 200s without usable JSON). Over 200 items, each test checks:
every item ends ok or missing; the stub saw exactly items + retries requests; an item is ok exactly
when its last request was answered, so no fault ever yields a score or a rephrasing; every fault was
counted as an error by the client; Retry-After was waited out; and a rerun asks only for the missing
items, then nothing at all.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter

import pytest
from pydantic import BaseModel

from rbiqa import paths as P
from rbiqa.config import compose
from rbiqa.io import read_jsonl, write_jsonl
from rbiqa.judge.stage import run as judge_main
from rbiqa.llm import JsonTask, RetryPolicy, cache_key, run_json_tasks
from rbiqa.llm.gemini import GeminiJsonClient
from rbiqa.llm.openai_compatible import OpenAICompatibleJsonClient
from rbiqa.rephrase.stage import run as rephrase_run
from rbiqa.schemas import EvalItem, Generation
from tests.stubs.gemini_stub import DEFAULT_FAULT_RATES, GeminiStub, OpenAIStub, marker_key

N_ITEMS = 200
ATTEMPTS = 4  # per item: at ~51% faults, about 0.51**4 = 7% of the items end missing
RETRY_AFTER_S = 1  # what the stub's 429s ask for (a valid header: whole seconds) ...
RETRY_AFTER_CAP_S = 0.2  # ... honoured up to this, to keep the test short
KEY = "stub-secret-key-0123456789"
STUBS = {"gemini": GeminiStub, "openai_compatible": OpenAIStub}


def retry_overrides(group: str, backend: str, url: str) -> list[str]:
    base_url = url + "/v1" if backend == "openai_compatible" else url
    return [
        f"{group}={backend}", f"{group}.base_url={base_url}", f"{group}.timeout_s=2", f"{group}.concurrency=16",
        f"{group}.retry.max_attempts={ATTEMPTS}", f"{group}.retry.initial_s=0.01", f"{group}.retry.max_s=0.05",
        f"{group}.retry.jitter_s=0.01", f"{group}.retry.max_retry_after_s={RETRY_AFTER_CAP_S}",
    ]  # fmt: skip


def faulty(backend: str, responder, item_key, seed: int):
    return STUBS[backend](
        responder=responder,
        item_key=item_key,
        fault_rates=DEFAULT_FAULT_RATES,
        fault_seed=seed,
        retry_after=RETRY_AFTER_S,
        timeout_sleep_s=3.0,  # past the client's 2 s timeout
    )


# How each client reports each fault (google-genai reads a 200 with no body as a reply with no candidates)
FAULT_KIND = {"429": "http_429", "500": "http_500", "503": "http_503", "timeout": "timeout", "reset": "connection",
              "non_json": "non_json_body", "malformed": "invalid_response", "invalid_schema": "invalid_response",
              "empty": "invalid_response"}  # fmt: skip


def check_fault_accounting(stub, backend: str, api: dict, ok: set[str], missing: set[str]) -> dict:
    """The invariants every (backend, stage) pair must keep; returns the row of the fault table."""
    log = stub.outcomes()
    assert set(log) == ok | missing and not ok & missing and len(log) == N_ITEMS  # ok + missing = items
    for key, got in log.items():
        # retried while it failed, stopped at the first answer or after the last attempt
        assert all(f != "ok" for f in got[:-1]) and len(got) <= ATTEMPTS, (key, got)
        assert (got[-1] == "ok") == (key in ok), (key, got)  # no fault ever yields a result
        assert key in ok or len(got) == ATTEMPTS, (key, got)
    injected = stub.faults_injected()
    assert stub.total == N_ITEMS + api["retries"] == api["requests"]
    # every injected fault was seen by the client as an error of its kind
    kinds = {
        **FAULT_KIND,
        "empty_body": "non_json_body" if backend == "openai_compatible" else "invalid_response",
    }
    expected = Counter()
    for fault, n in injected.items():
        expected[kinds[fault]] += n
    assert api["errors"] == dict(expected)
    # Retry-After: a retry after a 429 waited the (capped) time the server asked for
    gaps = [
        b.at - a.at
        for reqs in _by_key(stub).values()
        for a, b in zip(reqs, reqs[1:], strict=False)
        if a.fault == "429"
    ]
    assert gaps and min(gaps) >= RETRY_AFTER_CAP_S - 0.01, min(gaps)
    assert api["retry_after_waits"] == len(gaps)
    assert ok and missing  # the rates are high enough that both outcomes occur
    return {
        "faults": dict(sorted(injected.items())),
        "requests": stub.total,
        "ok": len(ok),
        "missing": len(missing),
    }


def _by_key(stub) -> dict[str, list]:
    out: dict[str, list] = {}
    for r in sorted(stub.requests, key=lambda r: r.at):
        out.setdefault(r.key, []).append(r)
    return out


# --- rephrase -----------------------------------------------------------------------------------------
BASE = {"regulation_area": "Supervision", "applicable_to": "Banks", "category": "fact-based",
        "estimated_difficulty": 2, "source": "test", "as_of": 2024, "split": "train", "para_eval": False}  # fmt: skip


def rephrase_question(i: int) -> str:
    return f"What is the maximum penalty the RBI can impose on bank number {i} for late reporting?"


def rephrase_responder(prompt: str, body: dict) -> dict:
    i = int(re.search(r"bank number (\d+)", prompt).group(1))
    return {"rephrasings": [
        f"For late reporting, what is the highest penalty the RBI may levy on bank number {i}?",
        f"What penalty, at most, can the RBI impose on bank number {i} if it reports late?",
        f"If bank number {i} reports late, what maximum penalty can the RBI impose on it?",
    ]}  # fmt: skip


def question_key(prompt: str) -> str:
    return re.search(r"^Question: (.+)$", prompt, re.M).group(1)


@pytest.mark.parametrize("backend", ["gemini", "openai_compatible"])
def test_rephrase_stage_under_random_faults(backend, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GOOGLE_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    questions = {rephrase_question(i): f"s{i:03d}" for i in range(N_ITEMS)}
    write_jsonl(P.SPLIT_TRAIN, [{"id": s, "question": q, "answer": "Up to Rs 5 lakh.", **BASE}
                                for q, s in questions.items()])  # fmt: skip

    def run_once(stub) -> dict:
        # one round, so each source is one item: one call, retried, then ok or missing
        cfg = compose(
            [*retry_overrides("rephrase", backend, stub.url), "rephrase.k=3", "rephrase.max_attempts=1"]
        )
        return rephrase_run(cfg)

    with faulty(backend, rephrase_responder, question_key, seed=14) as stub:
        report = run_once(stub)
    failed = {r["source_id"] for r in read_jsonl(P.REPHRASE_REJECTED) if r["reasons"] == ["call_failed"]}
    missing = {q for q, s in questions.items() if s in failed}
    row = check_fault_accounting(stub, backend, report["calls"]["api"], set(questions) - missing, missing)
    by_src = Counter(r["source_id"] for r in read_jsonl(P.REPHRASE_TRAIN) if r["variant_idx"] > 0)
    assert all(by_src[s] == 0 for s in failed)  # a failed call gives no rephrasing
    assert all(by_src[s] == 3 for s in set(questions.values()) - failed)
    print(f"\nrephrase/{backend}: {row}")

    with STUBS[backend](responder=rephrase_responder, item_key=question_key) as stub:
        report = run_once(stub)
        assert stub.outcomes() == {q: ["ok"] for q in missing}  # cached items: 0 calls
    assert report["calls"]["cached_calls"] == N_ITEMS - len(missing)
    with STUBS[backend](responder=rephrase_responder, item_key=question_key) as stub:
        run_once(stub)
        assert stub.total == 0


# --- judge --------------------------------------------------------------------------------------------
def write_judge_inputs(n: int) -> list[str]:
    P.stamp("judge").parent.mkdir(parents=True, exist_ok=True)
    P.stamp("judge").write_text("judge: {}\n", encoding="utf-8")
    ids = [f"g{i:03d}" for i in range(n)]
    items = [
        EvalItem(item_id=i, source_id=f"s{k % 50}", eval_set="test_unseen", reference=f"Rs {k} lakh.",
                 question=f"What is the limit for case {k}? [[{i}]]", regulation_area="x",
                 category="fact-based", difficulty=2)
        for k, i in enumerate(ids)
    ]  # fmt: skip
    gens = [
        Generation(item_id=it.item_id, source_id=it.source_id, eval_set="test_unseen", arm="base",
                   question=it.question, answer=f"It is Rs {k} lakh.", model_id="synthetic")
        for k, it in enumerate(items)
    ]  # fmt: skip
    write_jsonl(P.eval_set_path("test_unseen"), [r.model_dump() for r in items])
    write_jsonl(P.generations("base", "test_unseen"), [r.model_dump() for r in gens])
    return ids


def expected_score(item_id: str) -> int:
    return int(item_id[1:]) % 2


def judge_responder(prompt: str, body: dict) -> dict:
    score = expected_score(marker_key(prompt))
    return {"score": score, "reasoning": f"stub verdict {score}"}


@pytest.mark.parametrize("backend", ["gemini", "openai_compatible"])
def test_judge_stage_under_random_faults(backend, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GOOGLE_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    ids = write_judge_inputs(N_ITEMS)

    def run_once(stub) -> dict:
        cfg = compose(["arm=base", "+eval_set=test_unseen", *retry_overrides("judge", backend, stub.url)])
        return judge_main(cfg)["test_unseen"]

    with faulty(backend, judge_responder, marker_key, seed=14) as stub:
        extra = run_once(stub)
    rows = read_jsonl(P.judgments("base", "test_unseen"))
    assert [r["item_id"] for r in rows] == ids
    ok = {r["item_id"] for r in rows if r["status"] == "ok"}
    missing = {r["item_id"] for r in rows if r["status"] == "missing"}
    assert extra["counts"]["ok"] == len(ok) and extra["counts"]["missing"] == len(missing)
    row = check_fault_accounting(stub, backend, extra["api"], ok, missing)
    for r in rows:
        if r["status"] == "ok":
            assert r["score"] == expected_score(r["item_id"]) and r["judge_backend"] == backend
        else:
            assert r["score"] is None and r["error"].startswith("judge call failed after retries")
            assert KEY not in r["error"]
    print(f"\njudge/{backend}: {row}")

    with STUBS[backend](responder=judge_responder, item_key=marker_key) as stub:
        extra = run_once(stub)
        assert stub.outcomes() == {i: ["ok"] for i in missing}  # cached verdicts: 0 calls
    assert extra["counts"]["cache_hits"] == len(ok) and extra["counts"]["ok"] == N_ITEMS
    with STUBS[backend](responder=judge_responder, item_key=marker_key) as stub:
        extra = run_once(stub)
        assert stub.total == 0 and extra["api"]["requests"] == 0


# --- client level: Retry-After, exact item matching, the random mode itself --------------------------
class Echo(BaseModel):
    n: int


def _client(backend: str, stub, retry: RetryPolicy):
    if backend == "gemini":
        return GeminiJsonClient("m", base_url=stub.url, timeout_s=5, retry=retry)
    return OpenAICompatibleJsonClient("m", base_url=stub.url + "/v1", timeout_s=5, retry=retry)


def _run(client, prompts: list[str]):
    async def go():
        try:
            ts = [JsonTask(cache_key(p=p), p, Echo) for p in prompts]
            return await run_json_tasks(client, ts, None, progress=False)
        finally:
            await client.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize("backend", ["gemini", "openai_compatible"])
def test_retry_after_is_honoured_up_to_the_cap(backend, monkeypatch):
    monkeypatch.setenv("GOOGLE_API_KEY", KEY)
    fast = dict(initial_s=0.01, max_s=0.02, jitter_s=0.0)
    with STUBS[backend](responder=lambda p, b: {"n": len(p)}, retry_after=1) as stub:
        stub.script("q1", ["429"])
        stub.script("q10", ["500"])
        [r1, r10] = _run(_client(backend, stub, RetryPolicy(max_attempts=3, **fast)), ["q1", "q10"])
        assert r1.ok and r10.ok
        assert stub.count("q1") == 2 and stub.count("q10") == 2  # exact items: "q1" never catches "q10"
        a, b = [r.at for r in stub.requests if r.key == "q1"]
        assert b - a >= 1.0  # waited the full second the server asked for, not the 10 ms backoff
        stub.reset_counts()
        stub.retry_after = 3600  # a hostile header: honoured only up to the cap
        stub.script("q2", ["429"])
        c = _client(backend, stub, RetryPolicy(max_attempts=3, max_retry_after_s=0.3, **fast))
        [r2] = _run(c, ["q2"])
        a, b = [r.at for r in stub.requests]
        assert r2.ok and 0.3 <= b - a < 3 and c.stats.retry_after_waits == 1


def test_random_faults_follow_the_rates_and_the_seed():
    with GeminiStub(fault_rates=DEFAULT_FAULT_RATES, fault_seed=3) as stub:
        draws = Counter(stub._draw(f"item{i}", n) for i in range(4000) for n in range(5))
        for fault, rate in DEFAULT_FAULT_RATES.items():
            assert abs(draws[fault] / 20000 - rate) < 0.01, (fault, draws[fault])
        assert [stub._draw("x", n) for n in range(50)] == [stub._draw("x", n) for n in range(50)]
        with pytest.raises(ValueError, match="summing to <= 1"):
            stub.random_faults({"429": 0.8, "500": 0.3})


def test_openai_judge_fails_fast_on_a_missing_key_or_an_unknown_model(tmp_path, monkeypatch):
    from rbiqa.judge.protocol import JudgeConfigError

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    write_judge_inputs(3)
    base = ["arm=base", "+eval_set=test_unseen", "judge=openai_compatible", "judge.retry.initial_s=0.01"]
    with pytest.raises(JudgeConfigError, match=r"OPENAI_API_KEY.*judge=reference"):
        judge_main(compose([*base, "judge.api_key_required=true"]))
    with OpenAIStub() as stub, pytest.raises(JudgeConfigError, match="model was not found"):
        judge_main(compose([*base, f"judge.base_url={stub.url}/no-such-route"]))  # the stub answers 404
    assert not P.judgments("base", "test_unseen").exists()
