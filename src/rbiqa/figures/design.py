"""What the run actually did, for the paper's data and method sections: the trained facts and any
subsampling, where the rephrasings came from, how the main arm was trained and which weights it shipped.

Read from the manifests and reports the stages wrote (never from the config the report was built
with), so the sentences describe the artefacts behind the numbers. A value a manifest does not record
is None, and its macro prints "n/a".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rbiqa import paths as P
from rbiqa.figures.data import read_manifest, read_report

# how the rephrase backends are named in the text
BACKEND_WORDS = {
    "shipped": "paraphrases written by hand for this project and shipped with the corpus",
    "hf_local": "a local language model",
    "gemini": "Gemini",
    "openai_compatible": "a model behind an OpenAI-compatible API",
}
WEIGHT_WORDS = {
    "4bit": "4-bit NF4 weights (bitsandbytes)",
    "roundtrip": "the NF4-quantised base weights held in float32 (the same values as 4-bit storage, "
    "without dequantising at every matrix product)",
    "none": "unquantised weights",
}


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def study_design(
    main_arm: str | None,
    root: Path = Path("."),
    neg_arm: str | None = None,
    mix_arm: str | None = None,
    hardneg_arm: str | None = None,
    hardneg_ctrl_arm: str | None = None,
) -> dict[str, Any]:
    raw = read_report(root / P.RAW_REPORT) or {}
    split = read_report(root / P.SPLIT_REPORT) or {}
    reph = read_manifest(root / P.REPHRASE_MANIFEST)
    reph_extra = reph.extra if reph else {}
    reph_report = read_report(root / P.REPHRASE_REPORT) or {}
    clean = read_report(root / P.CLEAN_REPORT) or {}

    def train_summary(arm: str | None) -> dict[str, Any]:
        return (read_report(root / P.adapter_dir(arm) / "train_summary.json") if arm else None) or {}

    summary = train_summary(main_arm)
    manifest = read_manifest(root / P.adapter_dir(main_arm) / "manifest.json") if main_arm else None
    neg, mix = train_summary(neg_arm), train_summary(mix_arm)
    hard, ctrl = train_summary(hardneg_arm), train_summary(hardneg_ctrl_arm)
    backend = reph_extra.get("backend")
    train_cfg = _get(manifest.config_dict if manifest else {}, "train") or {}
    probes = {
        name: (_get(raw, "sets", name, "valid"), _get(raw, "sets", name, "subsampled_to"))
        for name in ("unanswerable", "general")
    }
    return {
        "probes_written": {k: v[0] for k, v in probes.items()},
        "probes_subsampled": {k: v[1] for k, v in probes.items() if v[1] is not None},
        "trained_sources": _get(split, "counts", "train"),
        "unused_sources": _get(split, "counts", "unused"),
        "max_train_sources": split.get("max_train_sources"),
        "val_paraphrase_rows": _get(clean, "splits", "val_paraphrase", "out"),
        "rephrase_backend": backend,
        "rephrase_source": BACKEND_WORDS.get(backend, backend),
        "rephrase_model": reph_extra.get("model_id"),
        "rephrasings_accepted": _get(reph_report, "candidates", "accepted"),
        "rephrasings_generated": _get(reph_report, "candidates", "generated"),
        "main_train_sources": _get(summary, "data", "train_sources"),
        "main_train_rows": _get(summary, "data", "train_rows"),
        "exposures_per_fact": train_cfg.get("exposures_per_fact"),
        "epochs": _get(summary, "data", "num_train_epochs"),
        "steps": summary.get("global_step"),
        "learning_rate": train_cfg.get("learning_rate"),
        "selection": _get(summary, "selection", "rule"),
        "shipped_step": _get(summary, "selection", "shipped_step"),
        "weights": _get(summary, "runtime", "weights"),
        "weights_words": WEIGHT_WORDS.get(_get(summary, "runtime", "weights")),
        "tokens_per_s": summary.get("mean_tokens_per_s"),
        "device": summary.get("device"),
        # the abstention-examples arm: its share of the rows trained on, and how many rows that was
        "neg_abstention_share": _get(neg, "data", "mix_shares", "abstention"),
        "neg_abstention_rows": _get(neg, "data", "mix_rows", "abstention"),
        "mix_general_share": _get(mix, "data", "mix_shares", "general"),
        "mix_general_rows": _get(mix, "data", "mix_rows", "general"),
        # the hard-negative round: its steps, the mining set it chose from, what the main adapter got
        # wrong there (the round's rows), and how many of the control's random rows were wrong ones
        "hardneg_steps": _get(hard, "data", "round", "steps"),
        "hardneg_mining_items": _get(hard, "data", "round", "mining_items"),
        "hardneg_judged_wrong": _get(hard, "data", "round", "judged_wrong"),
        "hardneg_missing_verdicts": _get(hard, "data", "round", "missing_verdicts"),
        "hardneg_ctrl_rows_judged_wrong": _get(ctrl, "data", "round", "round_rows_judged_wrong"),
    }
