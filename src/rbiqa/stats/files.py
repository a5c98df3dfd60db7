"""Names of the metrics files, shared by the stats stage, the figures stage and report.smk."""

from __future__ import annotations

from pathlib import Path

from rbiqa import paths as P

SECTIONS = (
    "accuracy",
    "paired",
    "per_category",
    "power",
    "hallucination",
    "over_abstention",
    "forgetting",
    "generalisation_gap",
    "seeds",
    "judge_agreement",
    "reference_loss",
    "corrected",
    "summary",
)
MANIFEST = P.METRICS / "manifest.json"


def metric_path(section: str) -> Path:
    if section not in SECTIONS:
        raise KeyError(f"unknown metrics section {section!r}; known: {SECTIONS}")
    return P.METRICS / f"{section}.json"


def all_metric_paths() -> list[Path]:
    return [metric_path(s) for s in SECTIONS]
