"""Bad training configs must fail in a second, with a message naming the key, before any model load."""

from __future__ import annotations

import copy
import functools
import json

import pytest
import yaml
from omegaconf import OmegaConf

from rbiqa.io import InputError
from rbiqa.train import run as run_mod
from rbiqa.train.settings import build_settings, linear_module_names
from tests.unit._generate_fixtures import save_tokenizer
from tests.unit._train_fixtures import make_data


@pytest.fixture
def model_dir(tmp_path):
    """Only config.json and the tokenizer: enough for every check, and proof that no weights are read."""
    d = tmp_path / "model"
    save_tokenizer(d)
    (d / "config.json").write_text(json.dumps({"model_type": "llama"}), encoding="utf-8")
    return d


@functools.cache
def _composed(arm: str, experiment: str):
    from rbiqa.config import compose

    return compose([f"experiment={experiment}", f"arm={arm}"])


def compose_cfg(model_dir, arm="ft_k3", overrides=()):
    """Hydra composes each (arm, experiment) once; key overrides are applied on a copy (composing
    costs seconds per call on a loaded 2-core box)."""
    experiment = next((o.split("=")[1] for o in overrides if o.startswith("experiment=")), "default")
    cfg = copy.deepcopy(_composed(arm, experiment))
    OmegaConf.set_struct(cfg, False)
    OmegaConf.update(cfg, "model.path", model_dir.as_posix())
    for o in overrides:
        key, value = o.lstrip("+").split("=", 1)
        if key != "experiment":
            OmegaConf.update(cfg, key, yaml.safe_load(value))
    return cfg


def test_default_and_paper_configs_are_valid(model_dir):
    run = build_settings(compose_cfg(model_dir))
    assert run.n_rephrasings == 3 and run.train.lora.r == 16 and run.train.lora.use_rslora
    assert run.system_prompt and "Reserve Bank of India" in run.system_prompt
    paper = build_settings(compose_cfg(model_dir, overrides=["experiment=paper"]))
    assert paper.train.effective_batch_size == 32 and paper.train.exposures_per_fact == 4
    assert paper.train.selection == "val_paraphrase" and run.train.selection == "val_paraphrase"
    assert (paper.train.learning_rate, paper.train.warmup_ratio, paper.train.lora.alpha) == (2e-4, 0.05, 32)
    assert paper.train.optim == {"cpu": "adamw_torch", "cuda": "paged_adamw_8bit"}


def test_arm_overrides_reach_the_settings(model_dir):
    assert build_settings(compose_cfg(model_dir, "ft_r8")).train.lora.r == 8
    assert build_settings(compose_cfg(model_dir, "ft_lr5e-5")).train.learning_rate == 5e-5
    assert build_settings(compose_cfg(model_dir, "ft_curriculum")).train.curriculum is True
    rep = build_settings(compose_cfg(model_dir, "ft_k3_s2"))
    assert rep.train_seed == rep.seed + 2
    assert build_settings(compose_cfg(model_dir, "ft_k0")).n_rephrasings == 0
    assert build_settings(compose_cfg(model_dir, "ft_ep2")).train.exposures_per_fact == 8


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("train.lora.r=0", "train.lora.r"),
        ("train.lora.r=-4", "train.lora.r"),
        ("train.learning_rate=0", "train.learning_rate"),
        ("train.learning_rate=-1e-4", "train.learning_rate"),
        ("train.warmup_ratio=1.0", "train.warmup_ratio"),
        ("train.warmup_ratio=-0.1", "train.warmup_ratio"),
        ("train.per_device_train_batch_size=0", "train.per_device_train_batch_size"),
        ("train.gradient_accumulation_steps=0", "train.gradient_accumulation_steps"),
        ("train.max_steps=0", "train.max_steps"),
        ("train.lora.dropout=1.5", "train.lora.dropout"),
        ("arm.n_rephrasings=-1", "arm.n_rephrasings"),
        ("+train.unknown_key=1", "unknown_key"),
        ("train.packing=true", "packing"),
        ("train.num_train_epochs=2", "exactly one of num_train_epochs"),  # as well as exposures_per_fact
        ("train.exposures_per_fact=null", "exactly one of num_train_epochs"),  # neither
        ("train.early_stopping_patience=2 train.selection=final", "early stopping needs"),
    ],
)
def test_bad_values_name_the_key(model_dir, override, needle):
    arm = "ft_curriculum" if override == "train.packing=true" else "ft_k3"
    with pytest.raises(InputError) as e:
        build_settings(compose_cfg(model_dir, arm, override.split()))
    assert needle in str(e.value), str(e.value)


def test_unknown_target_module_lists_the_valid_ones(model_dir):
    with pytest.raises(InputError) as e:
        build_settings(compose_cfg(model_dir, overrides=["train.lora.target_modules=[q_proj,qkv_proj]"]))
    msg = str(e.value)
    assert "qkv_proj" in msg and "gate_proj" in msg and "q_proj'" not in msg.split("has")[1].split("]")[0]


def test_target_modules_of_an_unlisted_family_come_from_a_meta_skeleton(tmp_path):
    d = tmp_path / "gpt2"
    d.mkdir()
    cfg = {"model_type": "gpt2", "n_layer": 1, "n_embd": 8, "n_head": 2, "vocab_size": 10}
    (d / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
    # GPT-2 uses Conv1D, so it has no nn.Linear besides lm_head: nothing can be targeted
    assert linear_module_names(d) == frozenset()
    with pytest.raises(InputError, match="does not have"):
        build_settings(compose_cfg(d))


def test_prompting_arm_is_not_trainable(model_dir):
    with pytest.raises(InputError, match=r"only arms of kinds \[.finetune., .refine.\]"):
        build_settings(compose_cfg(model_dir, "base"))


def test_missing_model_says_to_fetch_it(tmp_path):
    with pytest.raises(InputError, match="fetch_model"):
        build_settings(compose_cfg(tmp_path / "nowhere"))


def test_stage_fails_before_loading_the_model(model_dir, tmp_path, monkeypatch):
    """The stage entry validates first: a bad config never reaches the (slow) model load."""
    calls = []
    monkeypatch.setattr("rbiqa.train.model.load_base", lambda *a, **k: calls.append(a))
    monkeypatch.chdir(tmp_path)
    make_data(tmp_path / "data" / "processed")
    with pytest.raises(InputError, match="train.lora.r"):
        run_mod.run_stage(compose_cfg(model_dir, overrides=["train.lora.r=0"]))
    assert calls == []


def test_asking_for_more_rephrasings_than_the_data_has_fails_before_model_load(
    model_dir, tmp_path, monkeypatch
):
    """A file with no source at the arm's k, from a rephrase run of unknown k, is the wrong file."""
    from rbiqa.train.data import load_rows, select_variants

    train, _ = make_data(tmp_path, k=1)
    with pytest.raises(InputError, match="at most 1"):
        select_variants(load_rows(train), 3, train)


def test_an_arm_beyond_the_configured_rephrase_k_is_a_config_error(model_dir):
    with pytest.raises(InputError, match=r"rephrase\.k=2"):
        build_settings(compose_cfg(model_dir, "ft_k3", ["rephrase.k=2"]))
    assert build_settings(compose_cfg(model_dir, "ft_k3", ["rephrase.k=3"])).rephrase_k == 3


def test_a_rephrase_yield_shortfall_trains_on_what_there_is(tmp_path):
    """rephrase.k=3 was asked for but the filters kept at most 1 per source: the k=3 arm trains on the
    originals plus what exists, and the per-source counts say so."""
    from rbiqa.train.data import TrainRow, load_rows, rephrasings_per_source, select_variants

    train, _ = make_data(tmp_path, n_sources=4, k=1)
    rows = [r for r in load_rows(train) if not (r.source_id == "s000" and r.variant_idx == 1)]
    chosen = select_variants(rows, 3, train, requested=3)
    assert chosen == rows and all(isinstance(r, TrainRow) for r in chosen)
    assert rephrasings_per_source(chosen) == {0: 1, 1: 3}
