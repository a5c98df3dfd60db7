"""Which arms and eval sets a stats run covers.

Snakemake passes them explicitly (`stats.arms=[...]`), so the numbers describe exactly the judgments
the rule declared as inputs. Run by hand without them, the stage falls back to the arm list of the
experiment in conf/pipeline.yaml, the same list Snakemake would have used.
"""

from __future__ import annotations

from collections.abc import Mapping

import yaml

from rbiqa import paths as P
from rbiqa.config import conf_dir
from rbiqa.io import InputError


def pipeline_config() -> dict:
    path = conf_dir() / "pipeline.yaml"
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def resolve_scope(stats_cfg: Mapping, experiment: str) -> tuple[list[str], list[str]]:
    arms = stats_cfg.get("arms")
    eval_sets = stats_cfg.get("eval_sets")
    if arms is None or eval_sets is None:
        pipe = pipeline_config()
        if arms is None:
            if experiment not in pipe.get("arms", {}):
                raise InputError(f"experiment {experiment!r} has no arm list in conf/pipeline.yaml")
            arms = pipe["arms"][experiment]
        if eval_sets is None:
            eval_sets = pipe.get("eval_sets", list(P.EVAL_SETS))
    arms, eval_sets = [str(a) for a in arms], [str(e) for e in eval_sets]
    unknown = [e for e in eval_sets if e not in P.EVAL_SETS]
    if unknown:
        raise InputError(f"unknown eval set(s) {unknown}; known: {list(P.EVAL_SETS)}")
    if not arms:
        raise InputError("stats: no arms to analyse")
    return arms, eval_sets
