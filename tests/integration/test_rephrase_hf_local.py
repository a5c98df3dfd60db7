"""The local rephraser on the real SmolLM2-135M (slow; needs data/models/smollm2_135m from fetch_model).

- prefix-cached decoding reproduces rbiqa.models.chat_generate under greedy decoding;
- an item's sample does not depend on the batch it ran in (per-item generators);
- the stage end to end on three sources, and a rerun that makes zero model calls.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rbiqa import paths as P
from rbiqa.config import compose
from rbiqa.io import read_json, read_jsonl, write_jsonl

MODEL = Path(__file__).resolve().parents[2] / "data" / "models" / "smollm2_135m"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (MODEL / "model.safetensors").exists(), reason="run `python -m rbiqa.fetch_model` first"
    ),
]
QUESTIONS = [
    "What is the minimum Tier 1 capital ratio prescribed for Small Finance Banks?",
    "Can NBFCs accept demand deposits?",
    "Under FEMA, what is the LRS limit on remittances by resident individuals in a financial year?",
]


@pytest.fixture(scope="module")
def model_and_tok():
    import torch

    from rbiqa.models import load_causal_lm, load_tokenizer

    torch.set_num_threads(1)
    return load_causal_lm(MODEL), load_tokenizer(MODEL)


def test_prefix_cache_matches_chat_generate_greedy(model_and_tok):
    from rbiqa.models import chat_generate
    from rbiqa.prefix_decoding import PrefixCachedSampler
    from rbiqa.rephrase.prompts import load_prompt

    model, tok = model_and_tok
    prompt = load_prompt("v1")
    sampler = PrefixCachedSampler(model, tok, prompt.chat_prefix(), stop_at_newline=False)
    ours = sampler.generate(QUESTIONS, [0] * 3, max_new_tokens=12, do_sample=False)
    ref = chat_generate(
        model, tok, [prompt.chat(q) for q in QUESTIONS], max_new_tokens=12, batch_size=3, progress=False
    )
    assert [o["text"] for o in ours] == [r["text"] for r in ref]
    assert [o["n_prompt_tokens"] for o in ours] == [r["n_prompt_tokens"] for r in ref]


def test_sample_independent_of_batch(model_and_tok):
    from rbiqa.prefix_decoding import PrefixCachedSampler
    from rbiqa.rephrase.prompts import load_prompt

    model, tok = model_and_tok
    sampler = PrefixCachedSampler(model, tok, load_prompt("v1").chat_prefix())
    batch = sampler.generate(QUESTIONS, [11, 22, 33], max_new_tokens=12, temperature=0.8, top_p=0.95)
    alone = sampler.generate(QUESTIONS[1:2], [22], max_new_tokens=12, temperature=0.8, top_p=0.95)
    assert alone[0]["text"] == batch[1]["text"]
    limited = sampler.generate(QUESTIONS, [1, 2, 3], max_new_tokens=[2, 3, 4], temperature=0.8)
    assert [o["n_new_tokens"] <= n for o, n in zip(limited, [2, 3, 4], strict=True)] == [True] * 3


def test_stage_hf_local_and_zero_call_rerun(tmp_path, monkeypatch):
    from rbiqa.rephrase.stage import run

    monkeypatch.chdir(tmp_path)
    meta = {"regulation_area": "Capital", "applicable_to": "Banks", "category": "fact-based",
            "estimated_difficulty": 2, "source": "t", "as_of": 2024, "split": "train"}  # fmt: skip
    rows = [
        {"id": f"q{i}", "question": q, "answer": "Answer.", "para_eval": i == 0, **meta}
        for i, q in enumerate(QUESTIONS)
    ]
    write_jsonl(P.SPLIT_TRAIN, rows)
    overrides = ["rephrase=hf_local", f"rephrase.model_path={MODEL}", "rephrase.k=1", "rephrase.max_attempts=2", "rephrase.threads=1",
                 "rephrase.batch_size=4", "rephrase.max_new_tokens=24", "rephrase.max_candidates_total=6"]  # fmt: skip
    first = run(compose(overrides))
    assert first["calls"]["model_calls"] == first["budget"]["candidates_used"] > 0
    assert first["budget"]["candidates_used"] <= 6
    train = read_jsonl(P.REPHRASE_TRAIN)
    assert [r["row_id"] for r in train if r["variant_idx"] == 0] == ["q0:v0", "q1:v0", "q2:v0"]
    n_rej = len(read_jsonl(P.REPHRASE_REJECTED))
    accepted = first["candidates"]["accepted"]
    assert accepted + n_rej == first["budget"]["candidates_used"]  # every candidate accounted for
    manifest = read_json(P.REPHRASE_MANIFEST)
    assert manifest["extra"]["backend"] == "hf_local" and len(manifest["extra"]["model_sha256"]) == 64

    before = {p: p.read_text() for p in (P.REPHRASE_TRAIN, P.REPHRASE_TEST_PARA, P.REPHRASE_REJECTED)}
    second = run(compose(overrides))
    assert second["calls"]["model_calls"] == 0
    assert second["calls"]["cache"]["hits"] == first["budget"]["candidates_used"]
    assert {p: p.read_text() for p in before} == before
