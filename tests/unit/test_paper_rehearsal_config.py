"""The paper rehearsal (conf/experiment/paper_rehearsal.yaml) is experiment=paper with only the scale
swapped: the two composed configs differ in no key outside the rehearsal's `rehearsal.changes` list,
and every listed key really differs, so the rehearsal cannot drift from the paper."""

from __future__ import annotations

import functools

import pytest

from rbiqa.rehearsal import (
    RehearsalError,
    allowed_changes,
    check_config,
    check_notice,
    check_seeds,
    check_stub,
    compose_plain,
    config_drift,
    stub_port,
)


@functools.cache
def composed(experiment: str, *overrides: str) -> dict:
    return compose_plain(experiment, overrides)


@pytest.fixture(scope="module")
def configs():
    return composed("paper"), composed("paper_rehearsal")


def test_rehearsal_differs_from_paper_only_in_listed_keys():
    changes = check_config()  # raises on drift
    assert all(why.strip() for why in changes.values())


def test_no_drift_for_an_ablation_arm_either():
    check_config(overrides=["arm=ft_ep0p5"])


@pytest.mark.parametrize(
    "override, key",
    [
        ("train.learning_rate=1e-3", "train.learning_rate"),  # a hyperparameter of the paper recipe
        ("train.max_steps=5", "train.max_steps"),  # a step cap would flatten the epochs ablation
        ("study.arms=[base,ft_k3]", "study.arms"),  # dropping arms
        ("generate.batch_size=4", "generate.batch_size"),  # the paper decoding batch
        ("+judge.extra_key=1", "judge.extra_key"),  # a key paper does not have
    ],
)
def test_a_change_to_an_unlisted_key_is_caught(override, key):
    drift = config_drift(composed("paper"), composed("paper_rehearsal", override))
    assert drift == {"unlisted": [key], "stale": []}


def test_check_config_raises_on_drift():
    with pytest.raises(RehearsalError, match=r"train\.lora\.r: differs"):
        check_config(rehearsal_overrides=["train.lora.r=4"])


def test_a_stale_entry_is_caught(configs):
    paper, rehearsal = configs
    rehearsal = {**rehearsal, "rehearsal": {"changes": [*rehearsal["rehearsal"]["changes"]]}}
    rehearsal["rehearsal"]["changes"].append({"key": "train.learning_rate", "why": "not changed at all"})
    drift = config_drift(paper, rehearsal)
    assert drift == {"unlisted": [], "stale": ["train.learning_rate"]}


def test_a_listed_key_covers_its_subtree_only():
    paper = {"data": {"path": "a"}, "database": 1, "x": {"y": 1, "z": 1}}
    reh = {
        "data": {"path": "b", "extra": 2},
        "database": 2,
        "x": {"y": 2, "z": 1},
        "rehearsal": {"changes": [{"key": "data", "why": "w"}, {"key": "x.y", "why": "w"}]},
    }
    assert config_drift(paper, reh) == {"unlisted": ["database"], "stale": []}


def test_the_paper_design_is_kept(configs):
    paper, rehearsal = configs
    assert rehearsal["study"] == paper["study"] and len(rehearsal["study"]["arms"]) >= 18
    for arm in ("ft_k3_s2", "ft_k3_s3", "ft_curriculum", "ft_ep0p5", "ft_ep2", "ft_r8", "ft_lr5e-4"):
        assert arm in rehearsal["study"]["arms"]
    t = rehearsal["train"]
    assert t["max_steps"] == -1 and t["exposures_per_fact"] == paper["train"]["exposures_per_fact"]
    assert (rehearsal["judge"]["backend"], rehearsal["rephrase"]["backend"]) == ("gemini", "gemini")
    assert (rehearsal["model"]["name"], rehearsal["data"]["name"]) == ("smollm2_135m", "sample")
    assert rehearsal["split"]["max_train_sources"] and rehearsal["report"]["rehearsal"]
    assert paper["report"]["rehearsal"] is None


def test_the_stub_is_local_and_every_listed_change_has_a_reason(configs):
    _, rehearsal = configs
    assert stub_port(rehearsal) > 0
    with pytest.raises(RehearsalError):
        allowed_changes({"rehearsal": {"changes": [{"key": "data"}]}})


def test_output_checks_fail_on_what_they_check():
    assert check_notice("Does QLoRA ...\n REHEARSAL, NOT\n A RESULT. This PDF") == []
    assert check_notice("Does QLoRA fine-tuning teach a small model RBI regulations?")
    table = "ft\\_k3 & \\texttt{test\\_unseen} & 3 & 10.0, 20.0, 30.0 & 1 & 2 & 3 \\\\\n"
    rows = [{"arm": "ft_k3", "eval_set": "test_unseen", "replicates": ["ft_k3", "ft_k3_s2", "ft_k3_s3"]}]
    assert check_seeds(rows, table) == []
    assert check_seeds([{**rows[0], "replicates": ["ft_k3", "ft_k3_s2"]}], table.replace("& 3 &", "& 2 &"))
    assert check_seeds([], "")


def test_stub_check_needs_requests_of_every_rule_that_ran():
    stats = {"kinds_ok": {"rephrase": 8, "judge": 40, "abstention": 3}}
    assert check_stub(stats, ["rephrase", "judge"]) == []
    no_judge = {"kinds_ok": {"rephrase": 8}}
    assert len(check_stub(no_judge, ["rephrase", "judge"])) == 2  # neither judge nor abstention prompts
    assert check_stub(no_judge, ["rephrase"]) == []  # the judge jobs were up to date: nothing to ask
    assert check_stub({"kinds_ok": {}}, ["train"]) == []
    # answered from the cache, which only the stub can have filled (the stub's own model names key it)
    assert check_stub(no_judge, ["rephrase", "judge"], {"judge": 21}) == []
