"""read_validated: the one reader of the JSON files passed between stages (rbiqa.files)."""

from __future__ import annotations

import json

import pytest

from rbiqa.files import Manifest, SummarySection
from rbiqa.io import InputError, read_validated
from rbiqa.manifest import build_manifest, write_manifest


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(InputError, match=r"nope\.json not found"):
        read_validated(tmp_path / "nope.json", Manifest)


def test_wrong_type_names_file_and_field(tmp_path):
    p = tmp_path / "summary.json"
    p.write_text(json.dumps({"arms": "base", "eval_sets": []}))
    with pytest.raises(InputError, match=r"summary\.json.*arms"):
        read_validated(p, SummarySection)


def test_missing_key_names_file_and_field(tmp_path):
    p = tmp_path / "summary.json"
    p.write_text(json.dumps({"arms": ["base"]}))
    with pytest.raises(InputError, match=r"summary\.json.*eval_sets.*Field required"):
        read_validated(p, SummarySection)


def test_not_json_is_an_input_error(tmp_path):
    p = tmp_path / "m.json"
    p.write_text("{")
    with pytest.raises(InputError, match="not readable as JSON"):
        read_validated(p, Manifest)


def test_open_sections_keep_their_other_keys(tmp_path):
    p = tmp_path / "summary.json"
    p.write_text(json.dumps({"arms": ["base"], "eval_sets": ["test_para"], "ci_level": 0.95, "seed": 1}))
    s = read_validated(p, SummarySection)
    assert s.arms == ["base"] and s.main_arm is None
    assert s.model_dump(exclude_unset=True) == json.loads(p.read_text())


def test_a_written_manifest_reads_back(tmp_path):
    out = tmp_path / "o.txt"
    out.write_text("x")
    written = write_manifest(tmp_path / "o.manifest.json", "split", {"seed": 1}, [], [out], {"n": 2})
    m = read_validated(tmp_path / "o.manifest.json", Manifest)
    assert m.stage == "split" and m.outputs == written["outputs"] and m.extra == {"n": 2}
    assert isinstance(m.stage_order, int) and m.config_dict == {"seed": 1}


def test_manifest_keys_are_the_models_fields():
    assert list(build_manifest("split", {}, [], [])) == list(Manifest.model_fields)
