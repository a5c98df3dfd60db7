"""The shipped paraphrases (data/sample/paraphrases.jsonl) and the backend that serves them."""

from __future__ import annotations

import json
import statistics

import pytest
from omegaconf import OmegaConf

from rbiqa import textsim
from rbiqa.config import compose
from rbiqa.io import InputError, read_jsonl
from rbiqa.rephrase.backends import GenRequest
from rbiqa.rephrase.filters import FilterConfig, ParaphraseFilter
from rbiqa.rephrase.shipped import ShippedBackend, load_shipped
from tests.conftest import REPO

SHIPPED = REPO / "data" / "sample" / "paraphrases.jsonl"


@pytest.fixture(scope="module")
def cfg():
    return compose(["rephrase=shipped"]).rephrase


def test_every_sample_question_has_three_plus_one_that_pass_the_filters(cfg):
    corpus = {r["id"]: r for r in read_jsonl(REPO / "data" / "sample" / "rbi_qa.jsonl")}
    shipped = load_shipped(SHIPPED)
    assert set(shipped) == set(corpus)
    filt = ParaphraseFilter(FilterConfig.from_config(OmegaConf.to_container(cfg.filters, resolve=True)))
    failures, jaccard = [], []
    for sid, row in shipped.items():
        assert len(row.train) == 3, sid
        q, a = corpus[sid]["question"], corpus[sid]["answer"]
        accepted: list[str] = []
        for p in [*row.train, row.heldout]:  # the order the stage checks them in
            reasons = filt.check(p, q, a, accepted)
            if reasons:
                failures.append((sid, p, reasons))
            accepted.append(p)
            jaccard.append(textsim.jaccard(textsim.canon_words(p), textsim.canon_words(q)))
    assert not failures, failures[:5]
    # the wording really changes: median word-set Jaccard with the original
    assert statistics.median(jaccard) <= 0.6


def test_bad_files_fail_with_the_line(tmp_path):
    good = {"id": "a", "train": ["Is it x?"], "heldout": "Is it y?"}
    cases = {
        "not JSON": "{broken\n",
        "missing heldout": json.dumps({"id": "a", "train": ["x?"]}) + "\n",
        "extra key": json.dumps({**good, "note": "?"}) + "\n",
        "repeats": json.dumps(good) + "\n" + json.dumps(good) + "\n",
    }
    for name, text in cases.items():
        p = tmp_path / f"{name.replace(' ', '_')}.jsonl"
        p.write_text(text)
        with pytest.raises(InputError, match=r"line \d"):
            load_shipped(p)
    with pytest.raises(InputError, match="no shipped paraphrases"):
        load_shipped(tmp_path / "absent.jsonl")


def test_backend_serves_the_designated_heldout(cfg):
    backend = ShippedBackend(cfg.path, cfg.k)
    row = backend.rows["rbi-0001"]
    plain, held, unknown, retry = backend.generate(
        [
            GenRequest("rbi-0001", "q", 3, 0, 0.6, 1),
            GenRequest("rbi-0001", "q", 4, 0, 0.6, 1, heldout=True),
            GenRequest("no-such-id", "q", 3, 0, 0.6, 1),
            GenRequest("rbi-0001", "q", 3, 1, 0.75, 1),
        ]
    )
    assert plain.texts == row.train and plain.heldout_slot is None
    assert held.texts == [*row.train, row.heldout] and held.heldout_slot == 3
    assert unknown.error and "no-such-id" in unknown.error
    assert retry.texts == [] and retry.error is None  # one set per source: nothing new in a retry round
    assert backend.describe()["model_id"].startswith("hand-written")


def test_k_above_what_is_shipped_is_a_config_error(cfg):
    with pytest.raises(InputError, match="rephrase.k=4"):
        ShippedBackend(cfg.path, 4)
