"""`python -m rbiqa.stats`: judgments in, results/metrics/*.json and a manifest out."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from rbiqa import paths as P
from rbiqa.config import to_container
from rbiqa.files import metrics_model
from rbiqa.io import write_json
from rbiqa.manifest import write_manifest
from rbiqa.stages import flat, repo_relative, stats_inputs
from rbiqa.stats.agreement import read_agreement
from rbiqa.stats.corrected import correction_input
from rbiqa.stats.files import MANIFEST, all_metric_paths, metric_path
from rbiqa.stats.load import load_results
from rbiqa.stats.metrics import StatsSettings, compute_all
from rbiqa.stats.reference_loss import load_reference_nll
from rbiqa.study import load_study

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict[str, dict]:
    stats_cfg = to_container(cfg.stats)
    study = load_study(cfg)
    arms, eval_sets = study.arm_names, list(study.eval_sets)
    settings = StatsSettings.from_config(stats_cfg, cfg.seed)
    log.info("stats for %d arms x %d eval sets, B=%d", len(arms), len(eval_sets), settings.n_resamples)
    results = load_results(arms, eval_sets)
    agreement = read_agreement(P.JUDGE_AGREEMENT, settings.judge_agreement_block)
    if not agreement["available"]:
        log.warning("judge agreement unavailable: %s", agreement["reason"])
    nll_sets = [e for e in (cfg.generate.get("reference_loss_sets") or []) if e in eval_sets]
    model = cfg.get("model") or {}
    correction = correction_input(
        stats_cfg,
        to_container(cfg.judge),
        {a: study.kind(a) for a in arms},
        applied_to_model=model.get("hf_id") or model.get("name"),
    )
    if not correction.available:
        log.warning("no correction for judge error: %s", correction.reason)
    metrics = compute_all(
        results,
        settings,
        agreement,
        arms,
        eval_sets,
        study.ft_arms,
        study.replicate_groups(),
        load_reference_nll(arms, nll_sets),
        nll_sets,
        correction,
    )
    for section, obj in metrics.items():
        metrics_model(section).model_validate(obj)  # what the figures' reader checks; written as built
        write_json(metric_path(section), obj)
    inputs = flat(stats_inputs(arms, eval_sets, nll_sets))
    if correction.available:
        inputs.append(repo_relative(Path(correction.calibration.source)))
    counts = metrics["summary"]
    write_manifest(
        MANIFEST,
        "stats",
        to_container(cfg),
        inputs,
        all_metric_paths(),
        extra={
            "arms": arms,
            "eval_sets": eval_sets,
            "total_missing": counts["total_missing"],
            "total_absent": counts["total_absent"],
        },
    )
    return metrics
