"""The study an experiment runs: its arms (with their kinds) and its eval sets, read from the config.

`conf/experiment/<name>.yaml` lists `study.arms`; `study.eval_sets` is in `conf/config.yaml` unless an
experiment overrides it. What an arm *is* (its kind, what it varies, which arm it replicates) is stated
once, in `conf/arm/<name>.yaml`. Snakemake, stats and figures all read it from here, so adding an arm or
an eval set to a study is a change to one YAML file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rbiqa import paths as P
from rbiqa.config import conf_dir
from rbiqa.io import InputError

# base: the model as shipped; fewshot / rag: the base model prompted with training QA pairs (k fixed
# examples / retrieved passages); finetune: a QLoRA adapter trained by the arm itself; finetune_rag:
# another arm's adapter (arm.adapter_of), prompted with retrieved passages as rag is; refine: another
# arm's adapter (arm.adapter_of) trained one short extra round on training rows chosen by arm.round_rows
# (rbiqa.train.round), the result being the arm's own adapter.
ArmKind = Literal["base", "fewshot", "rag", "finetune", "finetune_rag", "refine"]
ARM_KINDS: tuple[str, ...] = ArmKind.__args__
# the prompt each kind is answered with (rbiqa.generate.stage.build_prompts)
PROMPTS = {
    "base": "base",
    "fewshot": "fewshot",
    "rag": "rag",
    "finetune": "base",
    "finetune_rag": "rag",
    "refine": "base",
}
# the kinds that train an adapter of their own (a train job)
TRAINED_KINDS = ("finetune", "refine")
# the kinds that need arm.adapter_of (the finetune arm whose adapter they answer with, or refine)
ADAPTER_OF_KINDS = ("finetune_rag", "refine")
# refine: which training rows the extra round trains on. judged_wrong: the mining-set rows that the
# adapter_of arm's judged answers got wrong (hard negatives); random: as many mining-set rows drawn at
# random (the control that separates the mining from the extra compute)
RoundRows = Literal["judged_wrong", "random"]


class Ablation(BaseModel):
    """The one training setting an ablation arm changes: a dotted config path (its value is read from
    the arm's resolved config, never repeated here)."""

    model_config = ConfigDict(extra="forbid")
    param: str = Field(min_length=1)


class ArmSpec(BaseModel):
    """The `arm:` section of conf/arm/<name>.yaml."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    kind: ArmKind
    n_rephrasings: int | None = Field(default=None, ge=0)
    ablation: Ablation | None = None
    replicate_of: str | None = None  # a seed replicate of this arm (same recipe, another training seed)
    adapter_of: str | None = None  # finetune_rag: the finetune arm whose adapter answers; refine: the
    # finetune arm whose adapter the extra round starts from
    round_rows: RoundRows | None = None  # refine only

    @property
    def finetuned(self) -> bool:
        """Trains an adapter of its own (a train job)."""
        return self.kind in TRAINED_KINDS

    @property
    def adapter_arm(self) -> str | None:
        """The arm whose adapter the answers come from; None for the base model's weights."""
        return self.name if self.finetuned else self.adapter_of

    @property
    def prompt(self) -> str:
        return PROMPTS[self.kind]


@cache
def _arm_spec(path: Path) -> ArmSpec:
    if not path.exists():
        known = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise InputError(f"no arm config {path}: the study names an arm that does not exist (known: {known})")
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    try:
        spec = ArmSpec.model_validate(raw.get("arm") or {})
    except ValidationError as e:
        err = e.errors()[0]
        raise InputError(f"{path}: arm.{'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    if spec.name != path.stem:
        raise InputError(f"{path}: arm.name is {spec.name!r}; it must equal the file name {path.stem!r}")
    if (spec.kind == "finetune") != (spec.n_rephrasings is not None):
        raise InputError(f"{path}: arm.n_rephrasings is set for, and only for, kind finetune")
    if (spec.kind in ADAPTER_OF_KINDS) != (spec.adapter_of is not None):
        raise InputError(f"{path}: arm.adapter_of is set for, and only for, kinds {list(ADAPTER_OF_KINDS)}")
    if (spec.kind == "refine") != (spec.round_rows is not None):
        raise InputError(f"{path}: arm.round_rows is set for, and only for, kind refine")
    return spec


def arm_spec(name: str) -> ArmSpec:
    return _arm_spec(conf_dir() / "arm" / f"{name}.yaml")


@dataclass(frozen=True)
class Study:
    arms: tuple[ArmSpec, ...]
    eval_sets: tuple[str, ...]

    @property
    def arm_names(self) -> list[str]:
        return [a.name for a in self.arms]

    @property
    def ft_arms(self) -> list[str]:
        return [a.name for a in self.arms if a.finetuned]

    def kind(self, arm: str) -> str:
        return self.spec(arm).kind

    def spec(self, arm: str) -> ArmSpec:
        for a in self.arms:
            if a.name == arm:
                return a
        raise KeyError(f"arm {arm!r} is not in this study ({self.arm_names})")

    @property
    def mined_arms(self) -> list[str]:
        """The arms whose adapter answers the training mining set (adapter_of of a refine arm)."""
        return list(dict.fromkeys(a.adapter_of for a in self.arms if a.kind == "refine"))

    def replicate_groups(self) -> dict[str, list[str]]:
        """{arm: [arm, replicate, ...]} for every arm of the study with a replicate in the study."""
        groups: dict[str, list[str]] = {}
        for a in self.arms:
            if a.replicate_of and a.replicate_of in self.arm_names:
                groups.setdefault(a.replicate_of, [a.replicate_of]).append(a.name)
        return groups

    def ablation_params(self) -> dict[str, list[str]]:
        """{config path: [arms that vary it]}, in study order."""
        out: dict[str, list[str]] = {}
        for a in self.arms:
            if a.ablation:
                out.setdefault(a.ablation.param, []).append(a.name)
        return out


def check_eval_sets(eval_sets: Sequence[str]) -> tuple[str, ...]:
    sets = tuple(str(e) for e in eval_sets)
    unknown = [e for e in sets if e not in P.EVAL_SETS]
    if unknown:
        raise InputError(f"unknown eval set(s) {unknown} in study.eval_sets; known: {list(P.EVAL_SETS)}")
    if not sets or len(set(sets)) != len(sets):
        raise InputError(f"study.eval_sets must be a non-empty list without repeats, got {list(sets)}")
    return sets


def load_study(cfg: Mapping[str, Any]) -> Study:
    """The study of a composed config (its `study` section)."""
    study = cfg.get("study") or {}
    names = [str(a) for a in (study.get("arms") or [])]
    if not names:
        raise InputError("study.arms is empty: the experiment file must list the arms it runs")
    if len(set(names)) != len(names):
        raise InputError(f"study.arms repeats an arm: {names}")
    specs = tuple(arm_spec(n) for n in names)
    for a in specs:
        if a.adapter_of is not None and a.adapter_of not in {b.name for b in specs if b.kind == "finetune"}:
            raise InputError(
                f"arm {a.name} uses the adapter of {a.adapter_of!r}, which is not a finetune arm of this "
                f"study (study.arms: {names})"
            )
    return Study(specs, check_eval_sets(study.get("eval_sets") or []))
