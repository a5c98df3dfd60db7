"""Verdict parsing: lenient about wrapping, strict about content (anything else is missing, not 0)."""

import pytest

from rbiqa.judge.protocol import VerdictError, load_rubric, parse_verdict


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ('{"score": 1, "reasoning": "all facts right"}', 1),
        ('```json\n{"score": 0, "reasoning": "wrong amount"}\n```', 0),
        ('Here is my verdict: {"score": 1, "reasoning": "ok"} Thanks.', 1),
        ('{"score": "0", "reasoning": "string digit is unambiguous"}', 0),
    ],
)
def test_valid_verdicts(text, score):
    assert parse_verdict(text).score == score


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "The answer is correct.",
        '{"score": 2, "reasoning": "out of range"}',
        '{"score": true, "reasoning": "boolean"}',
        '{"score": 1}',
        '{"score": "yes", "reasoning": "x"}',
        '{score: 1, reasoning: "not json"}',
    ],
)
def test_invalid_verdicts_raise(text):
    with pytest.raises(VerdictError):
        parse_verdict(text)


def test_rubrics_render_and_hash_differ():
    r, a = load_rubric("rubric_v1"), load_rubric("abstention_v1")
    assert r.sha256 != a.sha256 and len(r.sha256) == 64
    text = r.render("Q?", "my answer", "the reference")
    assert "Q?" in text and "my answer" in text and "the reference" in text and "{" in text
    with pytest.raises(ValueError, match="not found"):
        load_rubric("rubric_v999")
