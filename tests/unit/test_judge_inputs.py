"""Bad judge inputs stop the job with a message naming the file and the problem."""

from __future__ import annotations

import json

import pytest

from rbiqa import paths as P
from rbiqa.io import InputError
from rbiqa.judge.inputs import load_eval_items, load_generations

from ._judge_data import eval_items, generation, write_inputs, write_jsonl


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    items = eval_items("test_unseen", 3)
    write_inputs(tmp_path, "base", "test_unseen", items, [generation(i, "base", "ans") for i in items])
    return tmp_path, items


def test_valid_inputs_load(project):
    _, items = project
    loaded = load_eval_items("test_unseen")
    assert [i.item_id for i in loaded] == [i.item_id for i in items]
    assert set(load_generations("base", "test_unseen", loaded)) == {i.item_id for i in items}


def test_missing_files(project):
    with pytest.raises(InputError, match="eval set 'general' not found.*clean stage"):
        load_eval_items("general")
    items = load_eval_items("test_unseen")
    with pytest.raises(InputError, match="generations of arm 'ft_k0'.*not found.*generate stage"):
        load_generations("ft_k0", "test_unseen", items)


def test_unknown_item_id(project):
    root, items = project
    extra = generation(eval_items("test_unseen", 1, prefix="zz")[0], "base", "x")
    gens = [generation(i, "base", "a") for i in items] + [extra]
    write_jsonl(root / P.generations("base", "test_unseen"), [g.model_dump() for g in gens])
    with pytest.raises(InputError, match="unknown item_id 'zz000'"):
        load_generations("base", "test_unseen", load_eval_items("test_unseen"))


def test_wrong_schema_and_bad_json(project):
    root, items = project
    path = root / P.generations("base", "test_unseen")
    rows = [generation(i, "base", "a").model_dump() for i in items]
    rows[1]["surprise"] = 1
    del rows[2]["model_id"]
    write_jsonl(path, rows)
    with pytest.raises(InputError, match=r"2 of 3 rows break the Generation schema") as e:
        load_generations("base", "test_unseen", load_eval_items("test_unseen"))
    assert "row 2" in str(e.value) and "row 3" in str(e.value)
    path.write_text(json.dumps(rows[0]) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(InputError, match=":2: not valid JSON"):
        load_generations("base", "test_unseen", load_eval_items("test_unseen"))


def test_duplicates_and_mismatches(project):
    root, items = project
    path = root / P.generations("base", "test_unseen")
    write_jsonl(path, [generation(items[0], "base", "a").model_dump()] * 2)
    with pytest.raises(InputError, match="duplicated item_id"):
        load_generations("base", "test_unseen", items)
    write_jsonl(path, [generation(items[0], "ft_k0", "a").model_dump()])
    with pytest.raises(InputError, match="arm 'ft_k0', expected 'base'"):
        load_generations("base", "test_unseen", items)


def test_eval_set_without_reference_is_refused(project):
    root, _ = project
    rows = [i.model_dump() | {"reference": None} for i in eval_items("general", 2)]
    write_jsonl(root / P.eval_set_path("general"), rows)
    with pytest.raises(InputError, match="have no reference answer"):
        load_eval_items("general")
