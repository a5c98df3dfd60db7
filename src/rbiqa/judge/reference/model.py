"""The offline default judge: a logistic regression over reference-based features, no LLM.

Its parameters are fitted to real Gemini 2.0 Flash labels by `rbiqa.judge.reference.fit` and shipped
as reference_params.json, so judging needs neither the labelled data nor network access. Its
agreement with Gemini (grouped cross-validation) is stored in the same file and reported by the
judge_agreement rule; scores from this judge are only as good as that agreement.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, model_validator
from tqdm.auto import tqdm

from rbiqa.io import InputError, read_json, sha256_file
from rbiqa.judge.protocol import JudgeTask, Kind, OnResult, Outcome
from rbiqa.judge.reference import DEFAULT_PARAMS
from rbiqa.judge.reference.abstention import THRESHOLD as ABSTAIN_THRESHOLD
from rbiqa.judge.reference.abstention import AbstentionDetector, detector_hash
from rbiqa.judge.reference.features import Triple, derived, feature_dicts

log = logging.getLogger(__name__)


class ReferenceParams(BaseModel):
    model_config = ConfigDict(extra="allow")

    features: list[str]
    scaler_mean: list[float]
    scaler_scale: list[float]
    coef: list[float]
    intercept: float
    threshold: float

    @model_validator(mode="after")
    def _same_lengths(self) -> ReferenceParams:
        n = len(self.features)
        if not (len(self.scaler_mean) == len(self.scaler_scale) == len(self.coef) == n):
            raise ValueError("features, scaler_mean, scaler_scale and coef must have the same length")
        if not 0 < self.threshold < 1:
            raise ValueError(f"threshold {self.threshold} is not a probability")
        return self


def load_params(path: str | Path | None = None) -> tuple[ReferenceParams, str]:
    path = Path(path) if path else DEFAULT_PARAMS
    if not path.is_file():
        raise InputError(
            f"reference judge parameters not found: {path}; fit them with "
            "`python -m rbiqa.judge.reference.fit --csv <labelled judgments csv>`"
        )
    try:
        params = ReferenceParams.model_validate(read_json(path))
    except ValueError as e:
        raise InputError(f"{path}: invalid reference judge parameters: {e}") from e
    return params, sha256_file(path)


# Plain-language names for the features most often behind a verdict (for `reasoning`).
_EXPLAIN = {
    "cos_answer_reference": "similarity to reference",
    "sent_coverage_min": "worst-covered reference sentence",
    "kw_recall_novel": "recall of reference terms",
    "term_recall": "recall of names/acronyms",
    "num_recall": "recall of numbers",
    "num_conflict_any": "conflicting number",
    "hedges": "hedging cues",
    "refusal": "refusal cue",
    "tok_recall_q10": "worst-matched reference words",
    "tok_recall_low": "share of reference words unmatched",
    "tok_precision_low": "share of answer words unsupported",
}


class ReferenceJudge:
    name = "reference"

    def __init__(self, params_path: str | Path | None = None, embedder=None, batch_size: int = 64) -> None:
        self.params, self.params_sha = load_params(params_path)
        if embedder is None:
            from rbiqa.judge.reference.embeddings import get_embedder

            embedder = get_embedder()
        self.embedder = embedder
        self.batch_size = batch_size
        self.model_id = f"reference-logreg+all-MiniLM-L6-v2@{self.params_sha[:12]}"
        self._abstention: AbstentionDetector | None = None

    def prompt_hash(self, kind: Kind) -> str:
        return self.params_sha if kind == "reference" else detector_hash()

    def predict(self, triples: Sequence[Triple]) -> tuple[np.ndarray, list[str]]:
        """Calibrated P(a strict judge says correct) and a short reason per triple."""
        p = self.params
        rows = [derived(r) for r in feature_dicts(triples, self.embedder)]
        if rows and set(rows[0]) != set(p.features):
            raise InputError(
                "reference_params.json was fitted on other features "
                f"(missing {sorted(set(p.features) - set(rows[0]))}, "
                f"new {sorted(set(rows[0]) - set(p.features))}); refit with rbiqa.judge.reference.fit"
            )
        x = np.array([[r[f] for f in p.features] for r in rows], dtype=np.float64).reshape(len(rows), -1)
        z = (x - np.array(p.scaler_mean)) / np.array(p.scaler_scale)
        contrib = z * np.array(p.coef)
        logit = contrib.sum(axis=1) + p.intercept
        prob = 1 / (1 + np.exp(-logit))
        reasons = []
        for row, c, pr in zip(rows, contrib, prob, strict=True):
            top = sorted(range(len(p.features)), key=lambda j: -abs(c[j]))[:3]
            parts = [f"{_EXPLAIN.get(p.features[j], p.features[j])}={row[p.features[j]]:.2f}" for j in top]
            reasons.append(
                f"reference judge p={pr:.2f} (threshold {p.threshold:.2f}); main: " + ", ".join(parts)
            )
        return prob, reasons

    def judge(self, tasks: Sequence[JudgeTask], on_result: OnResult) -> None:
        ref_tasks = [t for t in tasks if t.kind == "reference"]
        abs_tasks = [t for t in tasks if t.kind == "abstention"]
        for i in tqdm(range(0, len(ref_tasks), self.batch_size), desc="reference judge", unit="batch"):
            batch = ref_tasks[i : i + self.batch_size]
            missing_ref = [t for t in batch if not (t.reference or "").strip()]
            for t in missing_ref:
                on_result(t, Outcome.failed("no reference answer to compare with"))
            batch = [t for t in batch if (t.reference or "").strip()]
            if not batch:
                continue
            prob, reasons = self.predict([Triple(t.question, t.reference, t.answer) for t in batch])
            for t, pr, why in zip(batch, prob, reasons, strict=True):
                score = int(pr >= self.params.threshold)
                on_result(t, Outcome(score=score, reasoning=why, p_correct=round(float(pr), 6)))
        if abs_tasks:
            if self._abstention is None:
                self._abstention = AbstentionDetector(self.embedder)
            for i in tqdm(range(0, len(abs_tasks), self.batch_size), desc="abstention judge", unit="batch"):
                batch = abs_tasks[i : i + self.batch_size]
                scored = self._abstention.score([t.question for t in batch], [t.answer for t in batch])
                for t, (pr, why) in zip(batch, scored, strict=True):
                    on_result(
                        t, Outcome(score=int(pr >= ABSTAIN_THRESHOLD), reasoning=why, p_correct=round(pr, 6))
                    )
