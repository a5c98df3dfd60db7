"""hf_local rephrasing in worker processes yields exactly the candidates of one in-process sampler."""

from __future__ import annotations

import pytest

from rbiqa.llm import ResultCache
from rbiqa.llm.hf_local import HFLocalChatModel
from rbiqa.rephrase.backends import GenRequest, HFLocalBackend
from rbiqa.rephrase.prompts import load_prompt
from tests.unit._generate_fixtures import make_tiny_model

QUESTIONS = [
    "What is the cash reserve ratio?",
    "How often must KYC records of high-risk customers be updated?",
    "What is the loan to value ceiling for gold loans?",
    "Who regulates payment systems in India?",
    "What is the repo rate?",
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("rephrase_workers") / "tiny")


def candidates(model_dir, cache_dir, workers: int):
    llm = HFLocalChatModel(model_dir.as_posix(), threads=2, workers=workers)
    backend = HFLocalBackend(
        llm,
        load_prompt("v1"),
        ResultCache(cache_dir),
        max_new_tokens=8,
        max_len_ratio=2.0,
        top_p=0.95,
        batch_size=2,  # several batches, so the workers really share the work
    )
    reqs = [GenRequest(f"s{i}", q, 2, 0, 0.8, 7) for i, q in enumerate(QUESTIONS)]
    try:
        out = backend.generate(reqs)
    finally:
        backend.close()
    assert llm._pool is None and backend.calls == 2 * len(QUESTIONS)
    return [r.texts for r in out]


def test_workers_give_the_in_process_candidates(tiny, tmp_path):
    one = candidates(tiny, tmp_path / "one", workers=1)
    two = candidates(tiny, tmp_path / "two", workers=2)
    assert two == one
    assert all(len(t) == 2 and all(isinstance(x, str) for x in t) for t in two)
    assert len({x for t in one for x in t}) > 1, "sampling produced varied candidates"
