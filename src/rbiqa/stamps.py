"""Resolved-config stamps: content-based rerun triggers that survive `dvc pull` and fresh clones.

Snakemake's own params trigger needs `.snakemake/` metadata, which a fresh clone lacks. Instead, at DAG
time we compose each stage's config with Hydra and write the slice that stage depends on to
`.stamps/<stage>/<arm>.yaml`, rewriting it only when its content changed. Rules list their stamp as an
input, so a real config change makes the stamp newer than the outputs and Snakemake reruns from there.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import yaml

from rbiqa import paths as P
from rbiqa.config import compose, to_container
from rbiqa.stages import STAGES, STAMPED

# Which code and config sections each stage's outputs depend on: rbiqa.stages. Code content goes into the
# stamp, so a code change reruns exactly the stages it can affect, and an unchanged checkout (e.g. a
# reviewer's fresh clone) reruns nothing.
PACKAGE_DIR = Path(__file__).resolve().parent


def code_hash(stage: str) -> str:
    """sha256 over the stage's .py/.txt/.json sources (names and contents), ignoring caches."""
    h = hashlib.sha256()
    for rel in STAGES[stage].code:
        root = PACKAGE_DIR / rel
        files = [root] if root.is_file() else sorted(root.rglob("*")) if root.is_dir() else []
        for f in files:
            if f.is_file() and f.suffix in (".py", ".txt", ".json") and "__pycache__" not in f.parts:
                h.update(f.relative_to(PACKAGE_DIR).as_posix().encode())
                h.update(f.read_bytes())
    return h.hexdigest()


def stage_slice(cfg: dict, stage: str, code: str | None = None) -> dict:
    out = {k: cfg.get(k) for k in STAGES[stage].sections}
    if code is not None:
        out["code_sha256"] = code
    return out


def _write_if_changed(path: Path, text: str) -> bool:
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return True


def write_stamps(experiment: str, arms: Iterable[str], overrides: Sequence[str] = ()) -> dict[str, list[str]]:
    """Write every stamp for this experiment; returns {"changed": [...], "unchanged": [...]}."""
    arms = list(arms)
    base = [f"experiment={experiment}", *overrides]
    report: dict[str, list[str]] = {"changed": [], "unchanged": []}
    per_arm_cfg = {arm: to_container(compose([*base, f"arm={arm}"])) for arm in arms}
    shared_cfg = to_container(compose(base))
    for stage in STAMPED:
        code = code_hash(stage)
        targets = (
            [(arm, per_arm_cfg[arm]) for arm in arms] if STAGES[stage].per_arm else [("all", shared_cfg)]
        )
        for arm, cfg in targets:
            path = P.stamp(stage, arm)
            text = yaml.safe_dump(stage_slice(cfg, stage, code), sort_keys=True, allow_unicode=True)
            changed = _write_if_changed(path, text)
            report["changed" if changed else "unchanged"].append(path.as_posix())
    return report
