"""rbiqa.stages: the one registry the stamps, the manifests and the rules read."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from rbiqa import paths as P
from rbiqa import stages
from rbiqa.manifest import STAGE_ORDER
from rbiqa.stamps import PACKAGE_DIR, code_hash

REPO = Path(__file__).resolve().parents[2]
# stages whose manifest call takes its inputs and outputs from the registry
REGISTRY_STAGES = {
    "download.py": "download",
    "split.py": "split",
    "rephrase/stage.py": "rephrase",
    "clean/stage.py": "clean",
    "train/run.py": "train",
    "generate/stage.py": "generate",
    "judge/stage.py": "judge",
    "stats/stage.py": "stats",
    "figures/stage.py": "figures",
    "report/stage.py": "report",
}


def test_every_stamped_stage_has_code_that_exists():
    for name in stages.STAMPED:
        s = stages.STAGES[name]
        assert s.code, name
        for rel in s.code:
            assert (PACKAGE_DIR / rel).exists(), f"{name}: {rel} does not exist"
        assert len(code_hash(name)) == 64


def test_manifest_order_is_the_registry_order():
    assert STAGE_ORDER == {n: s.order for n, s in stages.STAGES.items()}


@pytest.mark.parametrize("module", sorted(REGISTRY_STAGES))
def test_manifest_calls_take_their_files_from_the_registry(module):
    """No hand list of paths beside a manifest call: its inputs/outputs are built by rbiqa.stages."""
    src = (PACKAGE_DIR / module).read_text(encoding="utf-8")
    assert f"stages.{REGISTRY_STAGES[module]}_inputs" in src or f"{REGISTRY_STAGES[module]}_inputs(" in src
    tree = ast.parse(src)
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id in ("inputs", "outputs") for t in node.targets
        ):
            assert not isinstance(node.value, ast.List), (
                f"{module}:{node.lineno}: a hand list of {ast.unparse(node)}"
            )


@pytest.mark.parametrize(
    "rule_file", ["data.smk", "rephrase.smk", "clean.smk", "report.smk", "common.smk", "evaluate_judge.smk"]
)
def test_rules_spread_the_registry(rule_file):
    text = (REPO / "workflow" / "rules" / rule_file).read_text(encoding="utf-8")
    assert "S.for_rule(S." in text


def test_rephrase_inputs_follow_the_backend():
    shipped = OmegaConf.create({"backend": "shipped", "path": "data/external/x.jsonl"})
    assert stages.rephrase_backend_inputs(shipped) == [Path("data/external/x.jsonl")]
    local = OmegaConf.create({"backend": "hf_local", "prompt_version": "v1", "model_path": "data/models/m"})
    files = stages.rephrase_backend_inputs(local)
    assert files[-1] == Path("data/models/m/manifest.json") and files[0].name == "rephrase_v1.txt"
    named = stages.rephrase_inputs(local)
    assert named["train"] == P.SPLIT_TRAIN and named["stamp"] == P.stamp("rephrase")


def test_flat_and_for_rule_keep_every_path():
    files = {"a": Path("x/a"), "b": [Path("x/b1"), Path("x/b2")]}
    assert stages.flat(files) == [Path("x/a"), Path("x/b1"), Path("x/b2")]
    assert stages.for_rule(files) == {"a": "x/a", "b": ["x/b1", "x/b2"]}


def test_a_refine_arm_reads_its_starting_adapter_and_the_mining_judgments():
    from rbiqa.study import arm_spec

    files = stages.train_inputs(arm_spec("ft_k3_hardneg"), [], Path("data/models/m"))
    assert files["init_adapter"] == P.adapter_dir("ft_k3") / "adapter_model.safetensors"
    assert files["mining_judgments"] == P.judgments("ft_k3", P.TRAIN_MINING)
    plain = stages.train_inputs(arm_spec("ft_k3_neg"), ["abstention"], Path("data/models/m"))
    assert "mining" not in plain and plain["mix"] == [P.CLEAN_ABSTENTION_TRAIN]
    # a refine arm answers with its own adapter; retrieval on the main adapter with ft_k3's and the train pairs
    assert stages.generate_inputs(arm_spec("ft_k3_hardneg"), ["test_unseen"], Path("m"))[
        "adapter"
    ].parent == (P.adapter_dir("ft_k3_hardneg"))
    rag = stages.generate_inputs(arm_spec("ft_k3_rag"), ["test_unseen"], Path("m"))
    assert rag["adapter"].parent == P.adapter_dir("ft_k3") and rag["train"] == P.CLEAN_TRAIN
    assert "adapter" not in stages.generate_inputs(arm_spec("base"), ["test_unseen"], Path("m"))


def test_judge_deciders_follow_the_configured_judge():
    ref = stages.judge_deciders(OmegaConf.create({"rubric": None, "params_path": None}))
    assert [p.name for p in ref] == ["reference_params.json", "abstention_exemplars.json"]
    llm = stages.judge_deciders(
        OmegaConf.create({"rubric": "rubric_v2", "abstention_rubric": "abstention_v2"})
    )
    assert [p.name for p in llm] == ["rubric_v2.txt", "abstention_v2.txt", "abstention_exemplars.json"]
