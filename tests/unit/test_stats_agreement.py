"""The judge-agreement reader reads the shape the judge_agreement stage writes, and only that."""

from __future__ import annotations

import json

import pytest

from rbiqa.io import InputError
from rbiqa.stats.agreement import read_agreement

JUDGE_STAGE_SHAPE = {
    "reference_vs_labels": {
        "n": 1048,
        "kappa": 0.8123,
        "kappa_ci": [0.77, 0.85],
        "accuracy": 0.92,
        "confusion": {
            "labels": [0, 1],
            "rows": "reference rater",
            "cols": "other",
            "matrix": [[690, 22], [61, 275]],
        },
    },
    "judge_pairs": [
        {
            "raters": ["reference", "gemini"],
            "n": 10,
            "kappa": 0.5,
            "kappa_ci": [0.1, 0.9],
            "accuracy": 0.8,
            "confusion": {"matrix": [[4, 1], [1, 4]]},
        }
    ],
    "human": None,
    "raters_found": ["reference"],
}


def test_reads_the_judge_stage_shape(tmp_path):
    p = tmp_path / "agreement.json"
    p.write_text(json.dumps(JUDGE_STAGE_SHAPE))
    a = read_agreement(p)
    assert a["available"] and a["primary"] == "reference_vs_labels"
    b = a["blocks"]["reference_vs_labels"]
    assert b["kappa"] == 0.8123 and b["kappa_ci"] == [0.77, 0.85] and b["confusion"] == [[690, 22], [61, 275]]
    assert a["blocks"]["judge_pairs:reference_vs_gemini"]["n"] == 10
    assert (
        read_agreement(p, preferred="judge_pairs:reference_vs_gemini")["primary"]
        == "judge_pairs:reference_vs_gemini"
    )


def test_alternative_spellings_are_refused(tmp_path):
    p = tmp_path / "a.json"
    p.write_text(json.dumps({"cohen_kappa": 0.4, "kappa_lo": 0.2, "kappa_hi": 0.6}))
    with pytest.raises(InputError, match="reference_vs_labels"):
        read_agreement(p)


def test_absent_file_is_flagged_unusable_file_raises(tmp_path):
    a = read_agreement(tmp_path / "missing.json")
    assert a["available"] is False and "not found" in a["reason"]
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="not readable as JSON"):
        read_agreement(bad)
    shape = json.loads(json.dumps(JUDGE_STAGE_SHAPE))
    shape["reference_vs_labels"]["kappa"] = None
    shape["judge_pairs"] = []
    bad.write_text(json.dumps(shape))
    assert "no block with a kappa" in read_agreement(bad)["reason"]
