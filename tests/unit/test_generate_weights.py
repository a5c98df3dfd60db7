"""On CPU, arms generate with NF4 round-tripped float32 weights: the 4-bit model's exact weight values."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rbiqa import paths as P
from rbiqa.generate import stage
from rbiqa.io import read_json, read_jsonl
from rbiqa.models import load_causal_lm
from rbiqa.nf4 import nf4_roundtrip_
from tests.unit._generate_fixtures import compose_cfg, eval_rows, make_tiny_model, write_jsonl

QUANT = {"load_in_4bit": True, "quant_type": "nf4", "double_quant": True, "compute_dtype": "float32"}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("model") / "tiny", seed=3)


def test_roundtrip_equals_bitsandbytes_4bit_weights(tiny_model):
    import bitsandbytes.functional as F

    four_bit = load_causal_lm(tiny_model, quant=QUANT)
    original = load_causal_lm(tiny_model)
    rt = load_causal_lm(tiny_model)
    n = nf4_roundtrip_(rt, QUANT)
    quantized = {
        name: m for name, m in four_bit.named_modules() if hasattr(getattr(m, "weight", None), "quant_state")
    }
    assert n == len(quantized) > 0
    # no host-dependent bfloat16 repacking (AVX512-BF16 CPUs): every host computes the same float32 function
    assert not any(m.support_avx512bf16_for_cpu for m in quantized.values())
    for name, module in rt.named_modules():
        if name in quantized:
            w4 = quantized[name].weight
            assert torch.equal(F.dequantize_4bit(w4.data, w4.quant_state), module.weight.data), name
    # the head (tied to the embeddings) stays unquantized, as in 4-bit loading
    assert torch.equal(rt.lm_head.weight, original.lm_head.weight)
    assert not torch.equal(
        rt.model.layers[0].self_attn.q_proj.weight, original.model.layers[0].self_attn.q_proj.weight
    )
    x = torch.randint(0, 200, (2, 10))
    with torch.no_grad():
        torch.testing.assert_close(rt(x).logits, four_bit(x).logits, rtol=1e-5, atol=1e-5)


def test_cpu_modes_in_the_stage(tmp_path, monkeypatch, tiny_model):
    monkeypatch.chdir(tmp_path)
    write_jsonl(P.eval_set_path("general"), eval_rows("general", 4))
    out = {}
    for mode in ("roundtrip", "4bit", "none"):
        stage.run(
            compose_cfg(
                "base",
                "general",
                tiny_model,
                [f"generate.cpu_quant_mode={mode}", "generate.max_new_tokens=10"],
            )
        )
        out[mode] = [r["answer"] for r in read_jsonl(P.generations("base", "general"))]
        weights = read_json(P.manifest_for(P.generations("base", "general")))["extra"]["weights"]
        assert weights["mode"] == mode
    assert out["roundtrip"] == out["4bit"]
    assert out["roundtrip"] != out["none"], "round-tripping must change the weights the model runs on"


def test_roundtrip_cache_gives_the_same_weights(tiny_model, tmp_path):
    from safetensors.torch import save_file

    from rbiqa.nf4 import cached_nf4_roundtrip_

    cache = tmp_path / "w.safetensors"
    fresh = load_causal_lm(tiny_model)
    assert cached_nf4_roundtrip_(fresh, QUANT, cache) == (14, False) and cache.exists()
    again = load_causal_lm(tiny_model)
    assert cached_nf4_roundtrip_(again, QUANT, cache) == (14, True)
    for (name, a), (_, b) in zip(fresh.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    save_file({"unrelated.weight": torch.zeros(2)}, str(cache))  # a file for another architecture
    third = load_causal_lm(tiny_model)
    assert cached_nf4_roundtrip_(third, QUANT, cache) == (14, False)
    assert torch.equal(third.model.layers[1].mlp.up_proj.weight, fresh.model.layers[1].mlp.up_proj.weight)
