"""Row validation of the raw corpus: every kind of bad row is quarantined with a reason."""

from __future__ import annotations

import json
import sys

import pytest

from rbiqa.download import Unparseable, map_hf_row, read_local, run, validate_rows
from rbiqa.io import InputError, read_json, read_jsonl
from rbiqa.schemas import QARecord
from rbiqa.stages import download_inputs, download_outputs, flat

GOOD = {
    "id": "rbi-x1",
    "question": "What is the CRR maintained by scheduled commercial banks?",
    "answer": "4.5% of NDTL with effect from May 21, 2022.",
    "regulation_area": "CRR/SLR",
    "applicable_to": "Scheduled commercial banks",
    "category": "fact-based",
    "estimated_difficulty": 2,
    "source": "RBI Monetary Policy Statement, May 2022",
    "as_of": 2022,
}


def _bad(**changes):
    row = dict(GOOD, id=f"bad-{len(changes)}-{sorted(changes)}")
    for k, v in changes.items():
        if v is KeyError:
            row.pop(k)
        else:
            row[k] = v
    return row


BAD_ROWS = {
    "missing key": _bad(answer=KeyError),
    "empty answer": _bad(answer="   "),
    "wrong category": _bad(category="opinion"),
    "difficulty out of range": _bad(estimated_difficulty=9),
    "difficulty wrong type": _bad(estimated_difficulty="hard"),
    "unknown field": _bad(extra_field="x"),
    "year out of range": _bad(as_of=1800),
    "oversized": _bad(question="Why " + "x" * 5000 + "?"),
}


def test_good_row_passes():
    good, bad = validate_rows([GOOD], QARecord, 4000, "qa")
    assert len(good) == 1 and not bad
    assert good[0]["question"] == GOOD["question"]


@pytest.mark.parametrize("kind", sorted(BAD_ROWS))
def test_each_bad_row_is_quarantined_with_reason(kind):
    good, bad = validate_rows([GOOD, BAD_ROWS[kind]], QARecord, 4000, "qa")
    assert [g["id"] for g in good] == [GOOD["id"]]
    assert len(bad) == 1 and bad[0]["reasons"], kind
    assert bad[0]["row"] == BAD_ROWS[kind]  # the original row is kept, nothing lost


def test_duplicate_ids_quarantined():
    good, bad = validate_rows(
        [GOOD, dict(GOOD, question=GOOD["question"] + " Explain.")], QARecord, 4000, "qa"
    )
    assert len(good) == 1 and len(bad) == 1
    assert "duplicate id" in bad[0]["reasons"][0]


def test_unparseable_lines_are_kept_for_quarantine(tmp_path):
    f = tmp_path / "c.jsonl"
    f.write_text(json.dumps(GOOD) + "\n{not json\n\n[1, 2]\n\n")
    rows, lines = read_local(f)
    good, bad = validate_rows(rows, QARecord, 4000, "qa", lines)
    assert len(good) == 1 and len(bad) == 2
    assert [(b["line"], b["reason"], b["raw"]["text"]) for b in bad] == [
        (2, "json", "{not json"),
        (4, "not_object", "[1, 2]"),
    ]
    assert "line 2" in bad[0]["reasons"][0] and "line 4" in bad[1]["reasons"][0]


def test_row_byte_limit_is_exact_and_ignores_the_line_break(tmp_path):
    line = json.dumps(GOOD).encode()
    f = tmp_path / "c.jsonl"
    f.write_bytes(line + b"\r\n" + line[:-1] + b', "x": 1}\r\n' + line)  # the last line has no line break
    rows, lines = read_local(f, max_row_bytes=len(line))
    assert isinstance(rows[0], dict) and isinstance(rows[2], dict) and lines == [1, 2, 3]
    assert isinstance(rows[1], Unparseable) and rows[1].reason == "oversized"
    assert (
        rows[1].raw["offset"] == len(line) + 2 and rows[1].raw["bytes"] == len(line) + 10
    )  # 8 more, and CRLF


def test_hf_mapping_and_missing_column():
    cols = {"question": "q", "answer": "a", "id": None}
    row = map_hf_row({"q": "What is SLR?", "a": "Statutory liquidity ratio."}, cols)
    assert row["question"] == "What is SLR?" and len(row["id"]) == 12
    with pytest.raises(InputError, match="no column 'a'"):
        map_hf_row({"q": "What is SLR?"}, cols)


def _cfg(tmp_path, rows, max_invalid_frac=0.5):
    from omegaconf import OmegaConf

    corpus = tmp_path / "qa.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    una = tmp_path / "u.jsonl"
    una.write_text(
        json.dumps(
            {
                "id": "u1",
                "question": "What does the 2031 Quantum Directive say?",
                "why_unanswerable": "no such directive",
                "regulation_area": "KYC/AML",
            }
        )
        + "\n"
    )
    gen = tmp_path / "g.jsonl"
    gen.write_text(
        json.dumps({"id": "g1", "question": "Capital of France?", "answer": "Paris", "topic": "geography"})
        + "\n"
    )
    neg = tmp_path / "n.jsonl"
    neg.write_text(
        json.dumps({"id": "n1", "question": "What does the 2031 Lunar Directive say?", "answer": "I do not know "
                    "of such a directive.", "regulation_area": "KYC/AML"}) + "\n"
    )  # fmt: skip
    return OmegaConf.create(
        {
            "seed": 1,
            "data": {
                "name": "t",
                "source": "local",
                "path": str(corpus),
                "unanswerable_path": str(una),
                "general_path": str(gen),
                "abstention_train_path": str(neg),
                "general_train_path": str(gen),
                "max_invalid_frac": max_invalid_frac,
                "max_text_chars": 4000,
            },
        }
    )


def test_run_writes_snapshot_quarantine_and_manifest(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = _cfg(tmp_path, [GOOD, BAD_ROWS["empty answer"], dict(GOOD, id="rbi-x2")])
    report = run(cfg)
    assert report["sets"]["qa"] == {
        "rows_in": 3,
        "valid": 2,
        "quarantined": 1,
        "quarantined_frac": round(1 / 3, 4),
        "reasons": {"schema": 1},
    }
    assert len(read_jsonl("data/raw/qa.jsonl")) == 2
    q = read_jsonl("data/raw/quarantine.jsonl")
    assert len(q) == 1 and q[0]["source"] == "qa"
    m = read_json("data/raw/manifest.json")
    assert m["stage"] == "download_data" and "data/raw/qa.jsonl" in m["outputs"]
    assert set(m["outputs"]) == {p.as_posix() for p in flat(download_outputs())}  # as the rule declares
    assert set(m["inputs"]) == {p.as_posix() for p in flat(download_inputs(cfg.data)) if p.exists()}
    assert len(m["extra"]["snapshot_sha256"]["qa"]) == 64


def test_run_fails_when_too_many_invalid(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = _cfg(tmp_path, [GOOD, *BAD_ROWS.values()], max_invalid_frac=0.2)
    with pytest.raises(InputError, match="max_invalid_frac"):
        run(cfg)
    # the rows are not lost: the quarantine is written before failing
    assert len(read_jsonl("data/raw/quarantine.jsonl")) == len(BAD_ROWS)


def test_hf_offline_fails_with_actionable_message(workspace):
    """The real datasets.load_dataset call, offline: a clear error naming the alternatives."""
    from tests.conftest import run_cmd

    proc = run_cmd(
        [sys.executable, "-m", "rbiqa.download", "data=rbi_hf", "data.hf_revision=" + "0" * 40],
        cwd=workspace,
        env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(workspace / "hf")},
        check=False,
        timeout=300,
    )
    assert proc.returncode != 0
    assert "data=sample" in proc.stderr and "dvc pull" in proc.stderr
    assert not (workspace / "data/raw/qa.jsonl").exists()  # no silent fallback that looks like a result


def test_hf_requires_a_pinned_revision():
    from omegaconf import OmegaConf

    from rbiqa.download import load_hf

    cfg = OmegaConf.create(
        {
            "hf_repo": "Vishva007/RBI-Circular-QA-Dataset",
            "hf_revision": None,
            "hf_split": "train",
            "columns": {},
        }
    )
    with pytest.raises(InputError, match="hf_revision is not set"):
        load_hf(cfg)


def test_subsample_is_deterministic_and_order_free():
    from rbiqa.download import subsample

    rows = [dict(GOOD, id=f"r{i}") for i in range(50)]
    a = subsample(rows, 10, 3)
    b = subsample(list(reversed(rows)), 10, 3)
    assert [r["id"] for r in a] == [r["id"] for r in b] and len(a) == 10
    assert [r["id"] for r in subsample(rows, 10, 4)] != [r["id"] for r in a]
