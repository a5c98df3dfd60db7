"""The one JSON shape every LLM judge must return, and a tolerant-but-strict parser for it.

Gemini gets this schema as `response_schema`; a local model is only asked for it in the prompt and
often wraps it in prose or code fences. Anything that does not validate is an error, which the caller
records as a missing judgment: a judge we cannot read has not judged, and must never count as 0.
"""

from __future__ import annotations

import json
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class Verdict(BaseModel):
    model_config = ConfigDict(extra="ignore")

    score: Literal[0, 1] = Field(description="1 if the answer meets the rubric, else 0")
    reasoning: str = Field(min_length=1, description="one or two sentences")


class VerdictError(ValueError):
    """The judge replied, but not with a valid verdict."""


_OBJECT = re.compile(r"\{.*?\}", re.S)


def parse_verdict(text: str | None) -> Verdict:
    if text is None or not text.strip():
        raise VerdictError("empty judge response")
    candidates = [text.strip()]
    fenced = re.sub(r"^```(?:json)?\s*|\s*```$", "", text.strip())
    candidates.append(fenced)
    candidates += _OBJECT.findall(text)
    last_error = "no JSON object found"
    for cand in candidates:
        try:
            obj = json.loads(cand)
        except json.JSONDecodeError as e:
            last_error = f"invalid JSON ({e.msg})"
            continue
        if isinstance(obj, dict) and isinstance(obj.get("score"), str) and obj["score"].strip() in "01":
            obj["score"] = int(obj["score"].strip())  # "1" is unambiguous; "yes" is not
        if isinstance(obj, dict) and isinstance(obj.get("score"), bool):
            last_error = "score is a boolean, expected 0 or 1"
            continue
        try:
            return Verdict.model_validate(obj)
        except ValidationError as e:
            last_error = f"schema-invalid verdict ({e.errors()[0]['msg']})"
    raise VerdictError(f"{last_error}: {text[:200]!r}")
