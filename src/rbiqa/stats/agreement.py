"""Read the judge_agreement stage's agreement.json into the blocks the report prints.

The file is validated against rbiqa.files.AgreementReport, the shape rbiqa.judge.agreement writes;
a missing file becomes `available: false` with the reason (the report prints that instead of a number),
a malformed one is an InputError naming the field.
"""

from __future__ import annotations

from pathlib import Path

from rbiqa.files import AgreementReport, KappaBlock
from rbiqa.io import read_validated

PREFERRED_BLOCKS = ("reference_vs_labels", "judge_vs_labels", "judge_vs_human", "gemini_vs_labels")


def normalise_block(block: KappaBlock) -> dict | None:
    """The numbers the report prints of one comparison; None where kappa is undefined (null)."""
    if block.kappa is None:
        return None
    ci = block.kappa_ci
    c = block.confusion.matrix
    conf = [[int(v) for v in r] for r in c] if len(c) == 2 and all(len(r) == 2 for r in c) else None
    return {
        "kappa": float(block.kappa),
        "kappa_ci": [float(ci[0]), float(ci[1])] if len(ci) == 2 and None not in ci else None,
        "accuracy": None if block.accuracy is None else float(block.accuracy),
        "confusion": conf,  # [[tn, fp], [fn, tp]]: rows = labels (0, 1), columns = judge (0, 1)
        "n": block.n,
    }


def _listed(name: str, items: list[KappaBlock] | None) -> dict[str, dict]:
    """Blocks of a list of comparisons (judge_pairs, human), keyed by the raters they compare."""
    out = {}
    for i, item in enumerate(items or []):
        if b := normalise_block(item):
            label = "_vs_".join(item.raters) if item.raters is not None else str(i)
            out[f"{name}:{label}"] = b
    return out


def read_agreement(path: Path, preferred: str | None = None) -> dict:
    if not Path(path).exists():
        return {"available": False, "reason": f"{path} not found", "blocks": {}}
    raw = read_validated(path, AgreementReport)
    blocks: dict[str, dict] = {}  # in the file's (sorted) key order
    blocks.update(_listed("human", raw.human))
    blocks.update(_listed("judge_pairs", raw.judge_pairs))
    if b := normalise_block(raw.reference_vs_labels):
        blocks["reference_vs_labels"] = b
    if not blocks:
        return {"available": False, "reason": f"{path} has no block with a kappa", "blocks": {}}
    order = [preferred, *PREFERRED_BLOCKS] if preferred else list(PREFERRED_BLOCKS)
    primary = next((k for k in order if k in blocks), sorted(blocks)[0])
    out = {"available": True, "primary": primary, "blocks": blocks, "source": str(path)}
    ref = raw.reference_vs_labels  # the reference judge per answer model and on its held-out slice
    out["per_model"] = {k: v.model_dump(exclude_unset=True) for k, v in ref.per_model.items()}
    out["holdout"] = ref.holdout
    if raw.human_labels is not None:
        out["human_labels"] = raw.human_labels.model_dump(exclude_unset=True)  # per eval set (judge.labels)
    return out
