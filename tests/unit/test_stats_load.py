"""Loading judgments: inconsistent input fails loudly with the file named; absent items are counted."""

from __future__ import annotations

import contextlib
import json

import pytest

from rbiqa import paths as P
from rbiqa.io import InputError, write_jsonl
from rbiqa.stats.load import load_results


def _item(i, eval_set="test_unseen", source=None):
    return {
        "item_id": f"i{i}",
        "source_id": source or f"s{i}",
        "eval_set": eval_set,
        "question": "What is KYC?",
        "reference": "An answer.",
        "regulation_area": "KYC",
        "category": "fact-based",
        "difficulty": 3,
    }


def _judg(i, arm="base", score=1, status="ok", eval_set="test_unseen", source=None):
    return {
        "item_id": f"i{i}",
        "source_id": source or f"s{i}",
        "eval_set": eval_set,
        "arm": arm,
        "score": score,
        "status": status,
        "judge_backend": "reference",
        "judge_model": "m",
    }


@pytest.fixture
def tree(tmp_path):
    write_jsonl(tmp_path / P.eval_set_path("test_unseen"), [_item(i) for i in range(4)])
    with contextlib.chdir(tmp_path):
        yield tmp_path


def _write(rows, arm="base"):
    write_jsonl(P.judgments(arm, "test_unseen"), rows)


def test_valid_tree_loads_with_metadata_and_absent_items(tree):
    _write([_judg(0, score=1), _judg(1, score=0), _judg(2, score=None, status="missing")])
    df = load_results(["base"], ["test_unseen"])
    assert len(df) == 4
    assert dict(df["status"].value_counts()) == {"ok": 2, "missing": 1, "absent": 1}
    assert df.loc[df["item_id"] == "i3", "score"].isna().all()
    assert set(df["regulation_area"]) == {"KYC"}


@pytest.mark.parametrize(
    "rows,message",
    [
        ([_judg(0, arm="ft_k3")], "labelled arm='ft_k3'"),
        ([_judg(0), _judg(0)], "duplicate judgment"),
        ([_judg(0, score=None, status="ok")], "status 'ok' but no score"),
        ([_judg(0, score=0, status="missing")], "status 'missing' but score 0"),
        ([_judg(9)], "not in data/processed/eval/test_unseen.jsonl"),
        ([_judg(0, source="other")], "source_id differs"),
        ([_judg(0, score=2)], "field 'score'"),
    ],
)
def test_bad_judgments_raise_input_error_naming_the_file(tree, rows, message):
    _write(rows)
    with pytest.raises(InputError, match=message) as e:
        load_results(["base"], ["test_unseen"])
    assert "results/base/judgments/test_unseen" in str(e.value)


def test_missing_file_says_which_stage(tree):
    with pytest.raises(InputError, match="does not exist"):
        load_results(["base"], ["test_unseen"])


def test_not_json_is_reported_with_line(tree):
    path = P.judgments("base", "test_unseen")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(_judg(0)) + "\n{oops\n")
    with pytest.raises(InputError, match=r":2: not valid JSON"):
        load_results(["base"], ["test_unseen"])
