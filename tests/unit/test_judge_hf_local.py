"""hf_local judge: rubric prompts in, strict verdict parsing out; unparseable output is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

import rbiqa.models
from rbiqa.judge.llm_judges import LocalJudge
from rbiqa.judge.protocol import JudgeTask
from rbiqa.llm.hf_local import HFLocalChatModel

SETTINGS = dict(
    max_new_len=64, batch_size=2, chunk_size=2, seed=0, rubric="rubric_v1", abstention_rubric="abstention_v1"
)


def test_outputs_are_parsed_or_missing(monkeypatch):
    replies = iter(
        [
            '{"score": 1, "reasoning": "ok"}',
            "I think it is right",
            '```json\n{"score": 0, "reasoning": "no"}\n```',
        ]
    )
    prompts = []

    def fake_generate(model, tok, convs, **kw):
        assert kw["do_sample"] is False  # greedy
        prompts.extend(c[0]["content"] for c in convs)
        return [{"text": next(replies)} for _ in convs]

    monkeypatch.setattr(rbiqa.models, "chat_generate", fake_generate)
    llm = HFLocalChatModel("unused", model_id="tiny", model=object(), tokenizer=object())
    judge = LocalJudge(llm, **SETTINGS)
    tasks = [
        JudgeTask("a", "reference", "Q1?", "R1", "A1"),
        JudgeTask("b", "reference", "Q2?", "R2", "A2"),
        JudgeTask("c", "abstention", "Q3?", None, "A3"),
    ]
    got = {}
    judge.judge(tasks, lambda t, o: got.__setitem__(t.item_id, o))
    assert got["a"].score == 1 and got["c"].score == 0
    assert got["b"].score is None and "unparseable judge output" in got["b"].error
    assert "GROUND TRUTH" in prompts[0] and "R1" in prompts[0]
    assert "does NOT exist" in prompts[2]
    assert judge.prompt_hash("reference") != judge.prompt_hash("abstention")


@pytest.mark.slow
def test_real_small_model_if_fetched(tmp_path):
    """With data/models/smollm2_135m present (fetch_model), run the real path end to end."""
    path = Path(__file__).resolve().parents[2] / "data" / "models" / "smollm2_135m"
    if not (path / "config.json").exists():
        pytest.skip(f"no fetched model at {path} (run fetch_model)")
    got = {}
    LocalJudge(HFLocalChatModel(path, model_id="tiny"), **{**SETTINGS, "max_new_len": 48}).judge(
        [JudgeTask("a", "reference", "What is 2+2?", "4", "4")], lambda t, o: got.__setitem__(t.item_id, o)
    )
    assert set(got) == {"a"}
    assert (got["a"].score in (0, 1)) != (got["a"].error is not None)  # judged, or missing with a reason
