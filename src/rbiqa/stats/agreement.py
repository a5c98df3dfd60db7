"""Normalise the judge engineer's agreement.json into one shape the report can rely on.

Read defensively: its exact keys belong to another stage, so several spellings are accepted (a flat
block, or named blocks such as `reference_vs_labels`), and anything unreadable becomes
`available: false` with the reason, which the report prints instead of a number.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PREFERRED_BLOCKS = ("reference_vs_labels", "judge_vs_labels", "judge_vs_human", "gemini_vs_labels")


def _num(x: Any) -> float | None:
    try:
        return None if x is None else float(x)
    except (TypeError, ValueError):
        return None


def _ci(block: dict) -> list[float] | None:
    ci = block.get("kappa_ci")
    if isinstance(ci, dict):
        ci = [ci.get("lo", ci.get("low")), ci.get("hi", ci.get("high"))]
    if ci is None and "kappa_lo" in block:
        ci = [block.get("kappa_lo"), block.get("kappa_hi")]
    if isinstance(ci, list | tuple) and len(ci) == 2 and all(_num(v) is not None for v in ci):
        return [float(ci[0]), float(ci[1])]
    return None


def _confusion(block: dict) -> list[list[int]] | None:
    c = block.get("confusion", block.get("confusion_matrix"))
    if isinstance(c, dict) and "matrix" in c:  # rbiqa.stats.kappa: {labels, rows, cols, matrix}
        c = c["matrix"]
    if isinstance(c, dict) and all(k in c for k in ("tn", "fp", "fn", "tp")):
        c = [[c["tn"], c["fp"]], [c["fn"], c["tp"]]]
    if isinstance(c, list) and len(c) == 2 and all(isinstance(r, list) and len(r) == 2 for r in c):
        try:
            return [[int(v) for v in r] for r in c]
        except (TypeError, ValueError):
            return None
    return None


def normalise_block(block: dict) -> dict | None:
    kappa = _num(block.get("kappa", block.get("cohen_kappa")))
    if kappa is None:
        return None
    conf = _confusion(block)
    n = block.get("n", block.get("n_items"))
    if n is None and conf is not None:
        n = sum(map(sum, conf))
    return {
        "kappa": kappa,
        "kappa_ci": _ci(block),
        "accuracy": _num(block.get("accuracy", block.get("agreement"))),
        "confusion": conf,  # [[tn, fp], [fn, tp]]: rows = labels (0, 1), columns = judge (0, 1)
        "n": int(n) if n is not None else None,
    }


def read_agreement(path: Path, preferred: str | None = None) -> dict:
    if not Path(path).exists():
        return {"available": False, "reason": f"{path} not found", "blocks": {}}
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        return {"available": False, "reason": f"{path} unreadable: {e}", "blocks": {}}
    blocks: dict[str, dict] = {}
    if isinstance(raw, dict) and normalise_block(raw):
        blocks["main"] = normalise_block(raw)
    elif isinstance(raw, dict):
        for k, v in raw.items():
            if isinstance(v, dict) and (b := normalise_block(v)):
                blocks[k] = b
            elif isinstance(v, list):  # e.g. judge_pairs / human: lists of blocks naming their raters
                for i, item in enumerate(v):
                    if isinstance(item, dict) and (b := normalise_block(item)):
                        raters = item.get("raters")
                        label = "_vs_".join(map(str, raters)) if isinstance(raters, list) else str(i)
                        blocks[f"{k}:{label}"] = b
    if not blocks:
        return {"available": False, "reason": f"{path} has no block with a kappa", "blocks": {}}
    order = [preferred, *PREFERRED_BLOCKS] if preferred else list(PREFERRED_BLOCKS)
    primary = next((k for k in order if k in blocks), sorted(blocks)[0])
    out = {"available": True, "primary": primary, "blocks": blocks, "source": str(path)}
    ref = raw.get("reference_vs_labels") if isinstance(raw, dict) else None
    if isinstance(ref, dict):  # the reference judge per answer model and on its held-out slice
        out["per_model"] = ref.get("per_model") or {}
        out["holdout"] = ref.get("holdout") or {}
    if isinstance(raw, dict) and isinstance(raw.get("human_labels"), dict):
        out["human_labels"] = raw["human_labels"]  # per eval set vs data/labels (rbiqa.judge.labels)
    return out
