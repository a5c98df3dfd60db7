"""benchmarks/gpu_check.sh's fast parts: the script parses, the run invocation it prints carries the
prepared folder and outlives the script's own budget, the training data it writes are valid training rows
with no unseen source trained on, the tiny synthetic model has the 3B's architecture, and the kernel
summary reads a report (and the absence of one) without failing. The legs themselves run by hand
(`bash benchmarks/gpu_check.sh --cpu-only`, ~3 min) and on a lent GPU."""

from __future__ import annotations

import argparse
import importlib.util
import re
import subprocess
import sys

from tests.conftest import REPO

SCRIPT = REPO / "benchmarks" / "gpu_check.sh"


def _module(name: str):
    sys.path.insert(0, str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_script_parses_and_prints_the_run_invocation():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    out = subprocess.run(
        ["bash", str(SCRIPT), "--print-run"], check=True, capture_output=True, text=True
    ).stdout
    call = re.search(r'run\(command="(.+?)", carry=\["(.+?)"\], timeout_s=(\d+)\)', out)
    assert call, out
    assert call.group(1) == "bash benchmarks/gpu_check.sh --gpu" and call.group(2) == "benchmarks/gpu_carry"
    budget = int(re.search(r"BUDGET=\$\{GPU_CHECK_BUDGET_S:-(\d+)\}", SCRIPT.read_text()).group(1))
    assert budget <= 480 < int(call.group(3)) <= 600  # the summary is written before the tool's limit
    ignored = subprocess.run(["git", "check-ignore", "-q", "benchmarks/gpu_carry/wheels/x.whl"], cwd=REPO)
    assert ignored.returncode == 0  # the wheels never get committed


def test_training_data_are_valid_rows_and_keep_unseen_sources_out(tmp_path):
    from rbiqa.io import read_jsonl
    from rbiqa.train.data import TrainRow

    gc = _module("gpu_check")
    gc.cmd_data(argparse.Namespace(out=str(tmp_path), n_sources=6, n_val=3))
    train, para, val = (read_jsonl(tmp_path / f"{n}.jsonl") for n in ("train", "val_paraphrase", "val"))
    for r in train + para + val:
        TrainRow.model_validate(r)
    assert len(train) == 6 * 4 and sorted({r["variant_idx"] for r in train}) == [0, 1, 2, 3]
    trained = {r["source_id"] for r in train}
    assert {r["source_id"] for r in para} <= trained and not {r["source_id"] for r in val} & trained
    assert not {r["question"] for r in para} & {r["question"] for r in train}  # held-out wordings


def test_tiny_synthetic_model_is_the_3b_architecture_scaled_down():
    tt = _module("train_throughput")
    big, tiny = tt.QWEN2_5_3B, tt.QWEN2_TINY
    assert (
        tiny.keys() == big.keys() and tiny["tie_word_embeddings"] and tiny["hidden_act"] == big["hidden_act"]
    )
    head_dim = {c["hidden_size"] // c["num_attention_heads"] for c in (big, tiny)}
    assert head_dim == {128}
    assert tiny["num_key_value_heads"] < tiny["num_attention_heads"]  # grouped-query attention, as in the 3B
    assert tt.dense_bf16_peak("NVIDIA H200") == 989.5e12 and tt.dense_bf16_peak("cpu") is None


def test_kernel_summary_reads_a_report_and_its_absence():
    kp = _module("kernel_probe")
    empty = kp.summarize(kp.kernel_report(None))
    assert empty["fused_lm_head"] is False and str(empty["paged_optimizer"]).startswith("no")
    probe = kp.KernelProbe(profile_step=None, loss_head="fused")
    probe.fused_head_calls, probe.fused_head_triton = 4, 4
    probe.attention_calls["sdpa"] = 8
    probe.inspected = {
        "attn_implementation": "sdpa",
        "liger_patched_modules": {"Qwen2RMSNorm": 5},
        "linear4bit_modules": 14,
        "optimizer_class": "bitsandbytes.optim.adamw.AdamW",
        "optimizer_is_paged": True,
        "optimizer_paged_state_tensors": 6,
    }
    probe.trace = {"families": {"bnb_4bit": {"ran": True}}, "sdpa_backends": ["mem_efficient"]}
    s = kp.summarize(probe.report())
    assert s["fused_lm_head"] == "triton" and s["liger"] is True and s["bnb_4bit"] is True
    assert "6 paged" in s["paged_optimizer"] and "mem_efficient" in s["flash_attention"]
