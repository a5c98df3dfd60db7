"""Batched, left-padded greedy generation must give exactly the token ids of one-by-one generation.

If it did not, an item's answer would depend on which other items shared its batch (and on the cache
state, since a resumed run forms different batches), and arms would be compared on noise."""

from __future__ import annotations

import pytest

from rbiqa.models import chat_generate, load_causal_lm, load_tokenizer
from tests.unit._generate_fixtures import REAL_MODEL, has_real_model, make_tiny_model

SYSTEM = "You are an expert on Reserve Bank of India regulations."
QUESTIONS = [
    "CRR?",
    "Under the RBI Master Direction on KYC, how often must the records of high-risk customers be "
    "updated, which documents are acceptable, and what happens when a customer does not respond?",
    "What is the capital of France?",
    "Explain the loan to value ceiling for gold loans by NBFCs, and say whether it differs for banks.",
    "SLR",
]


def conversations():
    return [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}] for q in QUESTIONS]


def check_batch_invariance(model, tok, max_new_tokens: int, batch_size: int):
    convs = conversations()
    batched = chat_generate(
        model, tok, convs, max_new_tokens=max_new_tokens, batch_size=batch_size, progress=False
    )
    single = [
        chat_generate(model, tok, [c], max_new_tokens=max_new_tokens, batch_size=1, progress=False)[0]
        for c in convs
    ]
    lengths = {r["n_prompt_tokens"] for r in batched}
    assert len(lengths) >= 3, "prompts must differ in length, or no padding is exercised"
    for i, (b, s) in enumerate(zip(batched, single, strict=True)):
        assert b["n_prompt_tokens"] == s["n_prompt_tokens"]
        assert b["token_ids"] == s["token_ids"], (
            f"item {i}: batched {b['token_ids']} != single {s['token_ids']}"
        )
        assert b["text"] == s["text"]
        assert b["n_new_tokens"] == s["n_new_tokens"]
    return batched


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = make_tiny_model(tmp_path_factory.mktemp("tiny"))
    return load_causal_lm(d), load_tokenizer(d, padding_side="left")


def test_batched_equals_one_by_one_tiny(tiny):
    model, tok = tiny
    out = check_batch_invariance(model, tok, max_new_tokens=12, batch_size=len(QUESTIONS))
    assert any(r["n_new_tokens"] > 0 for r in out)


def test_ignoring_the_attention_mask_is_detected(tiny):
    """Negative control: the comparison above is sensitive enough to catch padding leaking into attention."""
    import torch

    model, tok = tiny
    from rbiqa.models import render_prompts

    prompts = render_prompts(tok, conversations())
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    kw = dict(max_new_tokens=12, do_sample=False, pad_token_id=tok.pad_token_id)
    with torch.no_grad():
        masked = model.generate(**enc, **kw)
        unmasked = model.generate(
            input_ids=enc["input_ids"], attention_mask=torch.ones_like(enc["input_ids"]), **kw
        )
    assert not torch.equal(masked, unmasked)


def test_right_padding_is_refused(tiny):
    model, tok = tiny
    tok.padding_side = "right"
    try:
        with pytest.raises(ValueError, match="left"):
            chat_generate(model, tok, conversations()[:2], max_new_tokens=2, progress=False)
    finally:
        tok.padding_side = "left"


@pytest.mark.slow
@pytest.mark.skipif(not has_real_model(), reason=f"no converted SmolLM2 at {REAL_MODEL}")
def test_batched_equals_one_by_one_real_smollm2():
    model, tok = load_causal_lm(REAL_MODEL), load_tokenizer(REAL_MODEL, padding_side="left")
    out = check_batch_invariance(model, tok, max_new_tokens=16, batch_size=len(QUESTIONS))
    assert all(r["text"] for r in out)
