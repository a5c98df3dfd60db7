"""Secrets, at stage level: a key under a custom `api_key_env` really reaches the Gemini client, the stub
echoes it back in error bodies, and afterwards the canary appears nowhere in the project tree.

The stages run in-process here, so a failure points at the stage; the same canary goes through the tiny
pipeline under Snakemake, and its DVC remote, in test_dvc_roundtrip.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from rbiqa import paths as P
from rbiqa.config import compose
from rbiqa.io import read_jsonl, write_jsonl
from rbiqa.judge.stage import run as judge_main
from rbiqa.rephrase.stage import run as rephrase_run
from tests.integration.test_llm_faults_at_rates import (
    BASE,
    judge_responder,
    question_key,
    rephrase_question,
    rephrase_responder,
    write_judge_inputs,
)
from tests.stubs.gemini_stub import GeminiStub, marker_key

ENV = "RBIQA_TEST_CANARY_KEY"
CANARY = "canary-" + os.urandom(12).hex()


def overrides(group: str, url: str) -> list[str]:
    return [
        f"{group}=gemini", f"{group}.base_url={url}", f"{group}.api_key_env={ENV}", f"{group}.timeout_s=2",
        f"{group}.retry.max_attempts=2", f"{group}.retry.initial_s=0.01", f"{group}.retry.max_s=0.02",
        f"{group}.retry.jitter_s=0.0",
    ]  # fmt: skip


def echo_some(prompt: str, n: int) -> str:
    """Every third item's requests are answered by an error body that echoes the auth header."""
    return ("echo_auth_400", "echo_auth_500")[n % 2] if sum(map(ord, prompt)) % 3 == 0 else "ok"


def leaks(root: Path) -> list[str]:
    needles = [CANARY.encode(), base64.b64encode(CANARY.encode()), base64.urlsafe_b64encode(CANARY.encode())]
    found = []
    for p in root.rglob("*"):
        if {".git", ".venv"} & set(p.relative_to(root).parts) or not p.is_file():
            continue
        data = p.read_bytes()
        found += [f"{p.relative_to(root)}: {n[:12]!r}" for n in needles if n in data]
    return found


def test_canary_under_custom_api_key_env_is_never_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in ("GOOGLE_API_KEY", "GEMINI_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv(ENV, CANARY)
    questions = {rephrase_question(i): f"s{i:03d}" for i in range(30)}
    write_jsonl(P.SPLIT_TRAIN, [{"id": s, "question": q, "answer": "Up to Rs 5 lakh.", **BASE}
                                for q, s in questions.items()])  # fmt: skip
    write_judge_inputs(30)

    with GeminiStub(responder=rephrase_responder, item_key=question_key, default_fault=echo_some) as stub:
        rephrase_run(compose([*overrides("rephrase", stub.url), "rephrase.k=3", "rephrase.max_attempts=1"]))
        rephrase_faults = stub.faults_injected()
        seen = {r.headers.get("x-goog-api-key") for r in stub.requests}
    with GeminiStub(responder=judge_responder, item_key=marker_key, default_fault=echo_some) as stub:
        judge_main(compose(["arm=base", "+eval_set=test_unseen", *overrides("judge", stub.url)]))
        judge_faults = stub.faults_injected()
        seen |= {r.headers.get("x-goog-api-key") for r in stub.requests}

    assert seen == {CANARY}  # the key really reached the client and went out on every request
    assert rephrase_faults["echo_auth_400"] and judge_faults["echo_auth_400"]  # and came back in errors
    rows = read_jsonl(P.judgments("base", "test_unseen"))
    assert any(r["status"] == "missing" for r in rows) and any(r["status"] == "ok" for r in rows)
    assert any(r["reasons"] == ["call_failed"] for r in read_jsonl(P.REPHRASE_REJECTED))
    assert leaks(tmp_path) == []
