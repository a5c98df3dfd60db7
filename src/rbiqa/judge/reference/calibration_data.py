"""Loading the labelled judgments the reference judge is fitted and checked on.

The file is the reference study's Gemini 2.0 Flash per-item labels (see shared/calibration/README.md).
A row that cannot be used is reported with its reason; a file with any such row is refused, because
silently fitting on fewer rows would change the published calibration without anyone noticing.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from rbiqa.io import InputError

REQUIRED_COLUMNS = ("question", "ground_truth", "generated_answer", "judge_score", "item_id")
# Which model wrote each calibration answer (the CSV's `model` column), as the one-letter codes stored per
# row in reference_params.json (cv_oof.model): read by judge agreement and the stats' judge-error correction.
MODEL_CODES = {"b": "base", "f": "finetuned"}


def encode_models(models) -> str:
    """The cv_oof.model string of a sequence of answer models (MODEL_CODES' values)."""
    code = {v: k for k, v in MODEL_CODES.items()}
    unknown = sorted({str(m) for m in models} - set(code))
    if unknown:
        raise InputError(f"calibration answers by unknown model(s) {unknown}; known: {sorted(code)}")
    return "".join(code[str(m)] for m in models)


def decode_models(codes: str, where: str = "cv_oof.model") -> list[str]:
    unknown = sorted(set(codes) - set(MODEL_CODES))
    if unknown:
        raise InputError(f"{where} has unknown code(s) {unknown}; known: {MODEL_CODES}")
    return [MODEL_CODES[c] for c in codes]


def load_calibration_csv(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"calibration CSV not found: {path}")
    df = pd.read_csv(path, dtype={"item_id": str}, keep_default_na=False)
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing columns {missing}; expected at least {list(REQUIRED_COLUMNS)}")
    bad = []
    for i, row in df.iterrows():
        if str(row["judge_score"]).strip() not in {"0", "1"}:
            bad.append(f"row {i + 2}: judge_score={row['judge_score']!r} (want 0 or 1)")
        for col in ("question", "ground_truth", "item_id"):
            if not str(row[col]).strip():
                bad.append(f"row {i + 2}: empty {col}")
    if bad:
        shown = "; ".join(bad[:10])
        raise InputError(f"{path}: {len(bad)} unusable rows ({shown}{' ...' if len(bad) > 10 else ''})")
    df["judge_score"] = df["judge_score"].astype(int)
    df["generated_answer"] = df["generated_answer"].astype(str)
    return df
