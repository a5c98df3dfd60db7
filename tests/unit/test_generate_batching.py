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


def mixed_prefix_conversations():
    """Two prompt shapes in one batch, as the few-shot arm has: system only, and system + one solved
    example; the stage's decoder groups them by everything before the last user turn."""
    shot = [{"role": "user", "content": "What is CRR?"}, {"role": "assistant", "content": "A reserve ratio."}]
    convs = conversations()
    return [c if i % 2 else [c[0], *shot, c[1]] for i, c in enumerate(convs)]


def check_prefix_decoding_matches(model, tok, max_new_tokens: int):
    from rbiqa.prefix_decoding import PrefixGroupedGreedy

    convs = mixed_prefix_conversations()
    decoder = PrefixGroupedGreedy(model, tok, max_new_tokens)
    ours = decoder(convs)
    ref = chat_generate(model, tok, convs, max_new_tokens=max_new_tokens, batch_size=1, progress=False)
    assert len(decoder.samplers) == 2, "one cached prefix per prompt shape"
    for i, (o, r) in enumerate(zip(ours, ref, strict=True)):
        assert o["n_prompt_tokens"] == r["n_prompt_tokens"], i
        assert o["text"] == r["text"], f"item {i}: {o['text']!r} != {r['text']!r}"
        assert o["n_new_tokens"] <= max_new_tokens
    again = decoder(list(reversed(convs)))  # reuses the cached prefixes; order and batch mix do not matter
    assert [o["text"] for o in again] == [r["text"] for r in reversed(ref)]
    return ours


def test_prefix_cached_greedy_equals_generate_tiny(tiny):
    model, tok = tiny
    out = check_prefix_decoding_matches(model, tok, max_new_tokens=12)
    assert any(r["n_new_tokens"] > 0 for r in out)


def test_prefix_decoding_detects_a_wrong_prefix(tiny):
    """Negative control: a cache built from a different system prompt changes the answers, so the
    comparison above would catch a prefix cache that did not match its prompts."""
    from rbiqa.prefix_decoding import PrefixCachedSampler

    model, tok = tiny
    users = [c[-1]["content"] for c in conversations()]
    right = PrefixCachedSampler(model, tok, conversations()[0][:1], stop_at_newline=False)
    wrong = PrefixCachedSampler(model, tok, [{"role": "system", "content": "Reply in French."}], False)
    a = right.generate(users, [0] * len(users), 12, do_sample=False)
    b = wrong.generate(users, [0] * len(users), 12, do_sample=False)
    assert [x["text"] for x in a] != [x["text"] for x in b]


@pytest.mark.slow
@pytest.mark.skipif(not has_real_model(), reason=f"no converted SmolLM2 at {REAL_MODEL}")
def test_prefix_cached_greedy_equals_generate_real_smollm2():
    model, tok = load_causal_lm(REAL_MODEL), load_tokenizer(REAL_MODEL, padding_side="left")
    out = check_prefix_decoding_matches(model, tok, max_new_tokens=16)
    assert all(r["text"] for r in out)
