"""The gemini judge against a local stub of the Gemini API that injects failures.

Proves: every item ends judged or missing (none lost or duplicated); 429/500/timeouts/invalid JSON are
retried; persistent failures are missing, never 0; a killed run followed by a rerun repeats no call
whose verdict was already cached; the API key never reaches outputs, manifests or the cache.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rbiqa import paths as P
from rbiqa.config import compose
from rbiqa.io import read_json, read_jsonl
from rbiqa.judge.protocol import JudgeConfigError
from rbiqa.judge.stage import run as judge_main
from rbiqa.schemas import EvalItem, Generation
from tests.stubs.gemini_stub import GeminiStub, marker_key

REPO = Path(__file__).resolve().parents[2]
KEY = "stub-secret-key-0123456789"
FAST = [
    "judge=gemini",
    "judge.timeout_s=1",
    "judge.concurrency=4",
    "judge.retry.max_attempts=4",
    "judge.retry.initial_s=0.01",
    "judge.retry.max_s=0.05",
    "judge.retry.jitter_s=0.01",
]


def verdicts(zero: set[str] = frozenset(), delay_s: float = 0.0):
    """Stub responder: score 0 for items whose marker is in `zero`, else 1 (optionally slow)."""

    def respond(prompt: str, body: dict) -> dict:
        time.sleep(delay_s)
        score = 0 if any(f"[[{i}]]" in prompt for i in zero) else 1
        return {"score": score, "reasoning": f"stub verdict {score}"}

    return respond


def per_item(stub: GeminiStub, ids) -> dict[str, int]:
    return {i: n for i in ids if (n := stub.count(i))}


def write_project(root: Path, n: int, failed_generation: set[str] = frozenset()) -> list[str]:
    (root / P.stamp("judge")).parent.mkdir(parents=True, exist_ok=True)
    (root / P.stamp("judge")).write_text("judge: {}\n", encoding="utf-8")
    ids = [f"g{i:03d}" for i in range(n)]
    items = [
        EvalItem(
            item_id=i,
            source_id=f"s{k % 3}",
            eval_set="test_unseen",
            question=f"What is the limit for case {k}? [[{i}]]",
            reference=f"The limit is Rs {k} lakh.",
            regulation_area="x",
            category="fact-based",
            difficulty=2,
        )
        for k, i in enumerate(ids)
    ]
    gens = [
        Generation(
            item_id=it.item_id,
            source_id=it.source_id,
            eval_set="test_unseen",
            arm="base",
            question=it.question,
            answer=None if it.item_id in failed_generation else f"It is Rs {k} lakh.",
            error="timeout in generate" if it.item_id in failed_generation else None,
            model_id="synthetic",
        )
        for k, it in enumerate(items)
    ]
    for path, rows in ((P.eval_set_path("test_unseen"), items), (P.generations("base", "test_unseen"), gens)):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text("".join(r.model_dump_json() + "\n" for r in rows), encoding="utf-8")
    return ids


def run_in_process(base_url: str, extra=()):
    cfg = compose(["arm=base", "+eval_set=test_unseen", *FAST, f"judge.base_url={base_url}", *extra])
    return judge_main(cfg)["test_unseen"]


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GOOGLE_API_KEY", KEY)
    return tmp_path


def test_injected_faults_end_judged_or_missing_and_rerun_uses_cache(project):
    ids = write_project(project, 9, failed_generation={"g008"})
    script = {
        "g001": ["429"],
        "g002": ["500", "503"],
        "g003": ["timeout"],  # the stub sleeps past the client's 1 s timeout
        "g004": ["malformed"],
        "g005": ["invalid_schema"],
        "g006": ["500"] * 4,  # never recovers within 4 attempts -> missing
        "g007": ["malformed"] * 4,  # never valid -> missing
    }
    with GeminiStub(
        responder=verdicts(zero={"g001", "g004"}), timeout_sleep_s=2.5, item_key=marker_key
    ) as stub:
        for item, faults in script.items():
            stub.script(item, faults)
        extra = run_in_process(stub.url)
        first = per_item(stub, ids)
        rows = read_jsonl(P.judgments("base", "test_unseen"))
        assert [r["item_id"] for r in rows] == ids  # none lost, none duplicated, eval-set order
        by = {r["item_id"]: r for r in rows}
        assert [by[i]["score"] for i in ids[:6]] == [1, 0, 1, 1, 0, 1]
        for i in ("g006", "g007", "g008"):
            assert by[i]["status"] == "missing" and by[i]["score"] is None and by[i]["error"]
        assert by["g008"]["error"].startswith("generation failed: timeout in generate")
        assert "g008" not in first  # failed generations never reach the judge
        assert first == {
            "g000": 1,
            "g001": 2,
            "g002": 3,
            "g003": 2,
            "g004": 2,
            "g005": 2,
            "g006": 4,
            "g007": 4,
        }
        assert all(r["judge_model"] == "gemini-2.0-flash" and len(r["prompt_hash"]) == 64 for r in rows)
        assert extra["counts"]["ok"] == 6 and extra["counts"]["missing"] == 3

        stub.reset_counts()
        run_in_process(stub.url)  # rerun: only the two failed judgments are asked again (and now succeed)
        assert per_item(stub, ids) == {"g006": 1, "g007": 1}
        assert {r.headers.get("x-goog-api-key") for r in stub.requests} == {KEY}
    rows = read_jsonl(P.judgments("base", "test_unseen"))
    assert [r["status"] for r in rows] == ["ok"] * 8 + ["missing"]

    manifest = read_json(P.manifest_for(P.judgments("base", "test_unseen")))
    assert manifest["stage"] == "judge" and P.stamp("judge").as_posix() in manifest["inputs"]
    assert manifest["config"]["judge"]["api_key_env"] == "GOOGLE_API_KEY"
    assert manifest["extra"]["counts"]["cache_hits"] == 6
    for f in project.rglob("*"):
        if f.is_file():
            assert KEY.encode() not in f.read_bytes(), f"API key leaked into {f}"


def test_missing_api_key_fails_fast_naming_offline_alternative(project, monkeypatch):
    write_project(project, 2)
    monkeypatch.delenv("GOOGLE_API_KEY")
    with pytest.raises(JudgeConfigError, match=r"GOOGLE_API_KEY.*judge=reference"):
        run_in_process("http://127.0.0.1:9")


def test_unknown_model_stops_the_job(project):
    write_project(project, 3)
    # the stub answers 404 NOT_FOUND to any path that is not a generateContent route
    with (
        GeminiStub(responder=verdicts()) as stub,
        pytest.raises(JudgeConfigError, match="model was not found"),
    ):
        run_in_process(stub.url + "/no-such-model-route", extra=["judge.model=gemini-9-retired"])
    assert not P.judgments("base", "test_unseen").exists()


def test_kill_mid_run_then_rerun_repeats_no_cached_call(project):
    n = 12
    ids = write_project(project, n)
    env = {**os.environ, "GOOGLE_API_KEY": KEY, "RBIQA_CONF_DIR": str(REPO / "conf"), "PYTHONUNBUFFERED": "1"}
    with GeminiStub(responder=verdicts(delay_s=0.4), item_key=marker_key) as stub:
        cmd = [sys.executable, "-m", "rbiqa.judge", "arm=base", "+eval_set=test_unseen", *FAST]
        cmd += ["judge.concurrency=1", f"judge.base_url={stub.url}"]
        proc = subprocess.Popen(cmd, cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while stub.total < 4 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
        assert not P.judgments("base", "test_unseen").exists()  # no half-written output
        time.sleep(0.5)  # let a request still in flight at the stub finish
        first = per_item(stub, ids)
        assert 4 <= sum(first.values()) < n

        from rbiqa.llm.cache import ResultCache

        with ResultCache(P.CACHE / "judge") as cache:
            cached = len(cache)
        assert cached >= 3  # answered before the kill (the 4th may have been in flight)

        stub.reset_counts()
        run_in_process(stub.url)
        again = per_item(stub, ids)
        assert sum(again.values()) == n - cached  # every cached verdict was reused, nothing else skipped
        assert all(first.get(k, 0) + again.get(k, 0) <= 2 for k in ids)
        rows = read_jsonl(P.judgments("base", "test_unseen"))
        assert len(rows) == n and all(r["status"] == "ok" for r in rows)

        stub.reset_counts()
        run_in_process(stub.url)
        assert stub.total == 0  # a third run makes zero calls
    assert (
        json.loads(P.manifest_for(P.judgments("base", "test_unseen")).read_text())["extra"]["counts"][
            "judge_calls"
        ]
        == 0
    )
