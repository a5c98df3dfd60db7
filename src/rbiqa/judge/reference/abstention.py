"""Offline check that an answer to an unanswerable question abstains instead of fabricating.

No labelled abstention data exist for calibration, so this detector is deliberately simple and fully
documented rather than fitted: a logistic score over
  - refusal cues ("I do not have information", "I cannot confirm", "no such ...") and hedges,
  - how much closer the answer's embedding is to hand-written abstaining exemplars than to assertive
    ones (abstention_exemplars.json),
  - specifics the question did not contain (numbers, amounts, dates): the signature of fabrication.
Score 1 (correctly abstained) when the probability is at least 0.5. The weights are hand-set and
checked against labelled examples in tests/unit/test_judge_abstention.py. For the paper's
hallucination numbers prefer an LLM judge with the abstention rubric (prompts/abstention_v1.txt).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import numpy as np

from rbiqa.io import sha256_text, stable_json
from rbiqa.judge.reference import EXEMPLARS_PATH
from rbiqa.judge.reference.numbers import extract_quantities
from rbiqa.judge.reference.text_features import hedge_count, refusal_count

# Hand-set weights of the logistic score (see module docstring). Part of the detector's hash.
WEIGHTS = {
    "bias": -1.5,
    "refusal": 3.0,  # any explicit refusal / "not aware" / "no such" cue
    "hedges": 0.4,  # per hedge cue, at most 3 counted
    "exemplar_margin": 12.0,  # (max cos to abstaining exemplars) - (max cos to assertive exemplars)
    "novel_specifics": -1.2,  # per number/date/amount not in the question, at most 3 counted
}
THRESHOLD = 0.5


def _exemplars() -> dict[str, list[str]]:
    data = json.loads(EXEMPLARS_PATH.read_text(encoding="utf-8"))
    return {"abstain": data["abstain"], "assert": data["assert"]}


def detector_hash() -> str:
    return sha256_text(stable_json({"weights": WEIGHTS, "threshold": THRESHOLD, "exemplars": _exemplars()}))


def novel_specifics(question: str, answer: str) -> int:
    in_question = extract_quantities(question)
    return sum(1 for a in extract_quantities(answer) if not any(a.matches(q) for q in in_question))


class AbstentionDetector:
    def __init__(self, embedder) -> None:
        self.embedder = embedder
        ex = _exemplars()
        self._abstain = embedder.encode(ex["abstain"])
        self._assert = embedder.encode(ex["assert"])

    def score(self, questions: Sequence[str], answers: Sequence[str]) -> list[tuple[float, str]]:
        """(probability of abstaining, human-readable reason) per answer."""
        vecs = self.embedder.encode(list(answers)) if answers else np.zeros((0, 384))
        out = []
        for q, a, v in zip(questions, answers, vecs, strict=True):
            refusal = refusal_count(a) > 0
            hedges = min(hedge_count(a), 3)
            margin = float((self._abstain @ v).max() - (self._assert @ v).max())
            specifics = min(novel_specifics(q, a), 3)
            z = (
                WEIGHTS["bias"]
                + WEIGHTS["refusal"] * refusal
                + WEIGHTS["hedges"] * hedges
                + WEIGHTS["exemplar_margin"] * margin
                + WEIGHTS["novel_specifics"] * specifics
            )
            p = 1 / (1 + math.exp(-z))
            reason = (
                f"abstention detector p={p:.2f}: refusal cue {'yes' if refusal else 'no'}, "
                f"{hedges} hedge cue(s), exemplar margin {margin:+.2f}, {specifics} specific(s) not in the question"
            )
            out.append((p, reason))
        return out
