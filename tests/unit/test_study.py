"""What an arm is comes from its conf/arm/<name>.yaml: a fine-tuned adapter answering with retrieval
(finetune_rag) names the arm whose adapter it uses, and the study checks that arm trains in it."""

from __future__ import annotations

import pytest

from rbiqa.config import compose
from rbiqa.io import InputError
from rbiqa.study import _arm_spec, arm_spec, load_study


def test_finetune_rag_uses_the_main_adapter_and_trains_nothing():
    spec = arm_spec("ft_k3_rag")
    assert spec.kind == "finetune_rag" and spec.adapter_arm == "ft_k3" and spec.prompt == "rag"
    assert not spec.finetuned  # no train job of its own
    assert arm_spec("ft_k3").adapter_arm == "ft_k3" and arm_spec("base_rag").adapter_arm is None


@pytest.mark.parametrize("experiment", ["default", "paper"])
def test_studies_run_the_retrieval_arm_beside_its_adapter(experiment):
    study = load_study(compose([f"experiment={experiment}"]))
    assert "ft_k3_rag" in study.arm_names and "ft_k3_rag" not in study.ft_arms
    assert study.spec("ft_k3_rag").adapter_of in study.ft_arms


def test_adapter_of_an_arm_outside_the_study_is_an_error():
    cfg = compose(["experiment=default", "study.arms=[base,ft_k3_rag]"])
    with pytest.raises(InputError, match="uses the adapter of 'ft_k3'.*not a finetune arm of this study"):
        load_study(cfg)


@pytest.mark.parametrize(
    "arm",
    [
        "  name: x\n  kind: finetune_rag\n",  # which adapter?
        "  name: x\n  kind: rag\n  adapter_of: ft_k3\n",  # an adapter on a base-model arm
        "  name: x\n  kind: refine\n  round_rows: random\n",  # a round starting from what?
    ],
)
def test_adapter_of_goes_with_kinds_finetune_rag_and_refine_only(tmp_path, arm):
    path = tmp_path / "x.yaml"
    path.write_text("arm:\n" + arm)
    with pytest.raises(InputError, match="adapter_of is set for, and only for, kinds"):
        _arm_spec(path)


@pytest.mark.parametrize(
    ("arm", "match"),
    [
        (
            "  name: x\n  kind: refine\n  adapter_of: ft_k3\n",
            "round_rows is set for, and only for, kind refine",
        ),
        ("  name: x\n  kind: finetune\n  n_rephrasings: 3\n  round_rows: random\n", "round_rows"),
        ("  name: x\n  kind: refine\n  adapter_of: ft_k3\n  round_rows: wrong\n", "round_rows"),
        ("  name: x\n  kind: finetune\n", "n_rephrasings is set for, and only for, kind finetune"),
    ],
)
def test_a_refine_arm_states_its_rows_and_nothing_else_does(tmp_path, arm, match):
    path = tmp_path / "x.yaml"
    path.write_text("arm:\n" + arm)
    with pytest.raises(InputError, match=match):
        _arm_spec(path)


def test_the_paper_study_runs_the_hard_negative_pair_from_the_main_adapter():
    study = load_study(compose(["experiment=paper"]))
    assert {"ft_k3_hardneg", "ft_k3_hardneg_ctrl"} <= set(study.ft_arms)
    assert study.mined_arms == ["ft_k3"]
    assert load_study(compose(["experiment=default"])).mined_arms == []
