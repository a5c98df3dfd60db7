"""Load the stats stage's JSON (and the trainer logs) into frames, and resolve the study roles.

Roles (main fine-tuned arm, base, RAG, few-shot, k=0) let the paper's sentences name what they compare
independently of which arms ran: a role whose arm did not run resolves to None and its numbers print
as "n/a" while its sentence is switched off by an \\if flag.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from rbiqa import paths as P
from rbiqa.files import Manifest, metrics_model
from rbiqa.io import InputError, read_json, read_validated
from rbiqa.stats.files import SECTIONS
from rbiqa.study import Study
from rbiqa.train.outputs import LOG_COLUMNS as TRAINER_LOG_COLUMNS

ROLE_ARMS = {
    "Base": "base",
    "Fewshot": "base_fewshot",
    "Rag": "base_rag",
    "KZero": "ft_k0",
    "MainRag": "ft_k3_rag",  # the main adapter answering with base_rag's retrieval
    "MainNeg": "ft_k3_neg",  # the main recipe with abstention examples in training
    "MainMix": "ft_k3_mix",  # the main recipe with general-knowledge QA in training
    "MainHardneg": "ft_k3_hardneg",  # the main adapter, one more round on the training rows it got wrong
    "MainHardnegCtrl": "ft_k3_hardneg_ctrl",  # the same round on as many random training rows
}


@dataclass
class Metrics:
    sections: dict[str, dict]

    @classmethod
    def load(cls, metrics_dir: Path = P.METRICS) -> Metrics:
        missing = [s for s in SECTIONS if not (metrics_dir / f"{s}.json").exists()]
        if missing:
            raise InputError(f"{metrics_dir}: metrics {missing} missing: run the stats stage first")
        return cls({s: read_section(metrics_dir / f"{s}.json", s) for s in SECTIONS})

    def __getitem__(self, section: str) -> dict:
        return self.sections[section]

    @property
    def summary(self) -> dict:
        return self.sections["summary"]

    @property
    def arms(self) -> list[str]:
        return list(self.summary["arms"])

    @property
    def eval_sets(self) -> list[str]:
        return list(self.summary["eval_sets"])

    @property
    def main_arm(self) -> str | None:
        return self.summary.get("main_arm")

    def role_arm(self, role: str) -> str | None:
        arm = self.main_arm if role == "Main" else ROLE_ARMS[role]
        return arm if arm in self.arms else None

    def frame(self, section: str, key: str = "records") -> pd.DataFrame:
        return pd.DataFrame(self.sections[section].get(key, []))

    def accuracy(self, arm: str | None, eval_set: str) -> dict | None:
        if arm is None:
            return None
        return next(
            (r for r in self["accuracy"]["records"] if r["arm"] == arm and r["eval_set"] == eval_set), None
        )

    def paired(self, arm: str | None, ref: str | None, eval_set: str) -> dict | None:
        if arm is None or ref is None:
            return None
        recs = self["paired"]["records"]
        return next((r for r in recs if (r["arm"], r["ref"], r["eval_set"]) == (arm, ref, eval_set)), None)


def read_trainer_log(arm: str, root: Path = Path(".")) -> pd.DataFrame:
    path = root / P.adapter_dir(arm) / "trainer_log.csv"
    if not path.exists():
        raise InputError(f"{path} not found: the train stage for {arm} has not run")
    df = pd.read_csv(path)
    missing = [c for c in TRAINER_LOG_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"{path}: columns {missing} missing; expected {list(TRAINER_LOG_COLUMNS)}")
    for c in ("step", "train_loss", "eval_paraphrase_loss", "eval_unseen_loss"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    df["arm"] = arm
    return df


def read_section(path: Path, section: str) -> dict:
    """A metrics section, validated against its model (rbiqa.files), as the dict the stats wrote: the
    figures index sections by key, in the file's (sorted) key order."""
    model = read_validated(path, metrics_model(section))
    return dict(sorted(model.model_dump(exclude_unset=True).items()))


def read_manifest(path: Path) -> Manifest | None:
    """A stage manifest if present, else None: lineage prints 'not recorded' rather than failing. One
    that is present but not a Manifest is an error (InputError naming the field)."""
    return read_validated(path, Manifest) if path.exists() else None


def read_report(path: Path) -> dict | None:
    """A stage's own report (free-form counts) if present and readable, else None."""
    try:
        return read_json(path) if path.exists() else None
    except (OSError, ValueError):
        return None


def _dig(d, keys):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def ablation_families(
    study: Study, main_arm: str | None, root: Path = Path(".")
) -> dict[str, dict[str, float]]:
    """{config path: {arm: value}} for every setting that the study's ablation arms vary (arm.ablation),
    with the main arm joining each at its own value. Values are what trained: read from each arm's train
    manifest (its resolved config). Non-numeric settings and families of fewer than two arms are left
    out (they have no axis to draw)."""
    out: dict[str, dict[str, float]] = {}
    for param, arms in study.ablation_params().items():
        members = {}
        for a in [*arms, *([main_arm] if main_arm and main_arm not in arms else [])]:
            man = read_manifest(root / P.adapter_dir(a) / "manifest.json")
            val = _dig(man.config_dict if man else {}, param.split("."))
            if isinstance(val, int | float) and not isinstance(val, bool):
                members[a] = float(val)
        if len(members) >= 2:
            out[param] = dict(sorted(members.items(), key=lambda kv: kv[1]))
    return out
