"""What a stats run is about: its settings, and the long results table with the roles resolved.

The roles (main fine-tuned arm, references) are resolved here once, so every section of the metrics
agrees on them even when the configured main arm did not run.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rbiqa.stats.intervals import derived_rng

log = logging.getLogger(__name__)

NO_JUDGED = "no_judged_items"


@dataclass(frozen=True)
class StatsSettings:
    seed: int = 1234
    n_resamples: int = 10000
    ci_level: float = 0.95
    chunk: int = 1000
    alpha: float = 0.05
    power: float = 0.8
    main_arm: str = "ft_k3"
    base_arm: str = "base"
    references: tuple[str, ...] = ("base", "base_rag", "base_fewshot")
    extra_pairs: tuple[tuple[str, str], ...] = (("ft_k3", "ft_k0"),)
    headline_eval_set: str = "test_unseen"
    manipulation_eval_set: str = "test_trained"
    category_groupings: tuple[str, ...] = ("regulation_area", "category", "difficulty")
    category_eval_sets: tuple[str, ...] = ("test_paraphrase", "test_unseen")
    category_min_n: int = 10
    hallucination_eval_set: str = "unanswerable"
    over_abstention_eval_sets: tuple[str, ...] = ("test_trained", "test_paraphrase", "test_unseen")
    forgetting_eval_set: str = "general"
    gap_sets: tuple[str, str] = ("test_paraphrase", "test_unseen")
    judge_agreement_block: str | None = None

    @classmethod
    def from_config(cls, stats_cfg: Mapping, seed: int) -> StatsSettings:
        b = stats_cfg.get("bootstrap", {})
        c = stats_cfg.get("per_category", {})
        return cls(
            seed=int(seed),
            n_resamples=int(b.get("n_resamples", cls.n_resamples)),
            ci_level=float(stats_cfg.get("ci_level", cls.ci_level)),
            chunk=int(b.get("chunk", cls.chunk)),
            alpha=float(stats_cfg.get("alpha", cls.alpha)),
            power=float(stats_cfg.get("power", cls.power)),
            main_arm=str(stats_cfg.get("main_arm", cls.main_arm)),
            base_arm=str(stats_cfg.get("base_arm", cls.base_arm)),
            references=tuple(stats_cfg.get("references", cls.references)),
            extra_pairs=tuple(tuple(p) for p in stats_cfg.get("extra_pairs", cls.extra_pairs)),
            headline_eval_set=str(stats_cfg.get("headline_eval_set", cls.headline_eval_set)),
            manipulation_eval_set=str(stats_cfg.get("manipulation_eval_set", cls.manipulation_eval_set)),
            category_groupings=tuple(c.get("groupings", cls.category_groupings)),
            category_eval_sets=tuple(c.get("eval_sets", cls.category_eval_sets)),
            category_min_n=int(c.get("min_n", cls.category_min_n)),
            hallucination_eval_set=str(stats_cfg.get("hallucination_eval_set", cls.hallucination_eval_set)),
            over_abstention_eval_sets=tuple(
                stats_cfg.get("over_abstention_eval_sets", cls.over_abstention_eval_sets)
            ),
            forgetting_eval_set=str(stats_cfg.get("forgetting_eval_set", cls.forgetting_eval_set)),
            gap_sets=tuple(stats_cfg.get("gap_sets", cls.gap_sets)),
            judge_agreement_block=stats_cfg.get("judge_agreement_block"),
        )


@dataclass
class Study:
    """The long table plus the resolved roles (which arm is the main one, which references exist)."""

    results: pd.DataFrame
    settings: StatsSettings
    arms: list[str] = field(default_factory=list)
    eval_sets: list[str] = field(default_factory=list)
    # the study's fine-tuned arms (arm.kind == finetune) and seed replicates ({arm: [arm, replicate, ...]})
    finetuned: list[str] = field(default_factory=list)
    replicates: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.arms:
            self.arms = list(dict.fromkeys(self.results["arm"]))
        if not self.eval_sets:
            self.eval_sets = list(dict.fromkeys(self.results["eval_set"]))
        # split once: boolean-mask filtering of the long table per call dominated the run time
        self._cells = {key: g for key, g in self.results.groupby(["arm", "eval_set"], sort=False)}

    @property
    def ft_arms(self) -> list[str]:
        return [a for a in self.arms if a in self.finetuned]

    @property
    def references(self) -> list[str]:
        return [r for r in self.settings.references if r in self.arms]

    @functools.cached_property
    def main_arm(self) -> str | None:
        if self.settings.main_arm in self.arms:
            return self.settings.main_arm
        if self.ft_arms:
            log.warning("main arm %s not run; using %s", self.settings.main_arm, self.ft_arms[-1])
            return self.ft_arms[-1]
        return None

    def cell(self, arm: str, eval_set: str) -> pd.DataFrame:
        return self._cells.get((arm, eval_set), self.results.iloc[0:0])

    def rng(self, key: str) -> np.random.Generator:
        return derived_rng(self.settings.seed, key)
