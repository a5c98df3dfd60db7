"""The merged export computes what base + adapter computes."""

from __future__ import annotations

import pytest
import torch

from rbiqa.train.export import merge
from tests.unit._generate_fixtures import make_adapter
from tests.unit._train_fixtures import run_settings, tiny_model

IDS = torch.tensor([[5, 17, 42, 99, 7, 250, 3, 11]])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("export")
    model_dir = tiny_model(d)
    return model_dir, make_adapter(model_dir, d / "adapter")


def logits(model):
    with torch.no_grad():
        return model.eval()(input_ids=IDS).logits.float()


def test_merged_model_equals_unquantized_base_plus_adapter(tiny, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model_dir, adapter = tiny
    _, run = run_settings(model_dir, overrides=["train.export.base=original", "train.export.dtype=float32"])
    merge(run, adapter, tmp_path / "merged")

    merged = logits(AutoModelForCausalLM.from_pretrained(tmp_path / "merged"))
    base = AutoModelForCausalLM.from_pretrained(model_dir)
    base_only = logits(base)
    with_adapter = logits(PeftModel.from_pretrained(base, str(adapter)))
    torch.testing.assert_close(merged, with_adapter, atol=1e-4, rtol=1e-4)
    assert (merged - base_only).abs().max() > 1e-2  # the adapter really changes the outputs
    assert (tmp_path / "merged" / "tokenizer_config.json").exists()


def test_dequantized_merge_equals_the_4bit_model_it_was_trained_on(tiny, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from rbiqa.models import load_causal_lm

    model_dir, adapter = tiny
    _, run = run_settings(
        model_dir,
        overrides=[
            "train.quant.load_in_4bit=true",
            "train.export.base=dequantized",
            "train.export.dtype=float32",
        ],
    )
    merge(run, adapter, tmp_path / "merged")
    merged = logits(AutoModelForCausalLM.from_pretrained(tmp_path / "merged"))

    quant = {"load_in_4bit": True, "quant_type": "nf4", "double_quant": True, "compute_dtype": "float32"}
    q_base = load_causal_lm(model_dir, quant=quant)
    trained_as = logits(PeftModel.from_pretrained(q_base, str(adapter)))
    original = AutoModelForCausalLM.from_pretrained(model_dir)
    unquantized = logits(PeftModel.from_pretrained(original, str(adapter)))

    err_vs_trained = (merged - trained_as).abs().max()
    err_vs_unquantized = (merged - unquantized).abs().max()
    assert err_vs_trained < 1e-3, err_vs_trained
    # the comparison can tell the two bases apart: NF4 error is far larger than the merge's rounding
    assert err_vs_unquantized > 10 * err_vs_trained
