"""Schemas of the JSON files one stage writes and a later stage reads (pydantic v2).

The row schemas (rbiqa.schemas) cover JSONL rows; these cover the whole-file JSON that passes between
stages: manifests, the judge agreement report and the metrics sections. The writer builds its file
through the same model the reader validates it with (rbiqa.io.read_validated), so the two cannot drift
apart. Parts whose content is open-ended (a stage's config, a section's own numbers) stay open
(`extra="allow"`, or `dict[str, Any]`): only what a reader relies on is typed.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# A number kept as the writer wrote it: an int stays an int, so a file read and written again is the same.
Number = int | float


class _Open(BaseModel):
    """A file whose other keys are kept as they are, for readers that pass them on."""

    model_config = ConfigDict(extra="allow")


# --- manifests (rbiqa.manifest) ---------------------------------------------------------------------


class Manifest(BaseModel):
    """What `rbiqa.manifest.build_manifest` writes next to a job's outputs: what it read and wrote, by
    content hash, and how (config, code version, libraries)."""

    model_config = ConfigDict(extra="forbid")

    stage: str
    stage_order: int | float
    created_unix: float
    git_sha: str
    command: str
    platform: str
    versions: dict[str, str]
    config: Any
    inputs: dict[str, str]  # path -> sha256
    outputs: dict[str, str]
    extra: dict[str, Any] = Field(default_factory=dict)

    @property
    def config_dict(self) -> dict[str, Any]:
        """The resolved config as a mapping ({} when a stage recorded none)."""
        return self.config if isinstance(self.config, dict) else {}


# --- judge agreement (rbiqa.judge.agreement -> results/judge/agreement.json) -------------------------


class Confusion(_Open):
    """rbiqa.stats.kappa.kappa_summary's confusion: rows = reference rater, columns = the other."""

    matrix: list[list[int]]


class KappaBlock(_Open):
    """One comparison of two raters (rbiqa.stats.kappa.kappa_summary plus who the raters were).

    kappa and its CI are None where agreement wrote a non-finite value as null (human labels)."""

    n: int
    kappa: Number | None
    kappa_ci: list[Number | None]
    accuracy: Number | None
    confusion: Confusion
    raters: list[str] | None = None


class ReferenceVsLabels(KappaBlock):
    per_model: dict[str, KappaBlock] = Field(default_factory=dict)
    holdout: dict[str, Any] = Field(default_factory=dict)


class HumanLabels(_Open):
    """Every judge against the ingested human label sheets, per eval set (rbiqa.judge.labels)."""

    n_labels: int
    comparisons: list[KappaBlock]


class AgreementReport(BaseModel):
    """results/judge/agreement.json."""

    model_config = ConfigDict(extra="forbid")

    reference_vs_labels: ReferenceVsLabels
    judge_pairs: list[KappaBlock]
    raters_found: list[str]
    human: list[KappaBlock] | None = None  # None: no human labels were found
    human_labels: HumanLabels | None = None


# --- metrics sections (rbiqa.stats -> results/metrics/<section>.json) ------------------------------


class MetricsSection(_Open):
    """A metrics section: its records (one per arm x eval set, or per comparison) and section-level
    numbers, which the figures read by name."""

    records: list[dict[str, Any]] = Field(default_factory=list)


class SummarySection(_Open):
    """results/metrics/summary.json: the study the numbers describe."""

    arms: list[str]
    eval_sets: list[str]
    ft_arms: list[str] = Field(default_factory=list)
    main_arm: str | None = None


class AgreementSection(_Open):
    """results/metrics/judge_agreement.json: rbiqa.stats.agreement's reading of the agreement report."""

    available: bool
    blocks: dict[str, dict[str, Any]]
    primary: str | None = None
    reason: str | None = None


METRICS_MODELS: dict[str, type[BaseModel]] = {"summary": SummarySection, "judge_agreement": AgreementSection}


def metrics_model(section: str) -> type[BaseModel]:
    return METRICS_MODELS.get(section, MetricsSection)
