"""The QLoRA model: a 4-bit NF4 base (double quantization) plus a LoRA adapter, on CPU or CUDA.

Device-dependent choices are resolved in one place (`resolve_runtime`) so the rest of the code path is
identical on both devices, and the resolved values are recorded in the run's summary.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rbiqa.train.settings import TrainSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Runtime:
    device: str  # cpu | cuda
    compute_dtype: str  # bitsandbytes compute dtype
    mixed_precision: str  # no | bf16 | fp16 (Trainer autocast)
    optim: str
    gradient_checkpointing: bool
    attn_implementation: str
    use_liger_kernel: bool
    loss_head: str  # fused | full | completion (rbiqa.train.trainer)
    padding_free: bool  # one flattened row per batch; else padded rows grouped by length
    weights: str  # 4bit (bitsandbytes NF4 storage) | roundtrip (NF4 values in float32) | none

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _cuda_bf16() -> bool:
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def resolve_runtime(t: TrainSettings) -> Runtime:
    import torch

    device = t.device if t.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device=cuda but no CUDA device is visible")
    compute = t.quant.compute_dtype
    if compute == "auto":
        # CPU: float32. Measured with bitsandbytes 0.50 on an AVX2 CPU without native bf16, a bf16
        # NF4 matmul (fwd+bwd) was ~6x slower than float32, and the weights are 4-bit either way.
        compute = "float32" if device == "cpu" else ("bfloat16" if _cuda_bf16() else "float16")
    mp = t.mixed_precision
    if mp == "auto":
        mp = "no" if device == "cpu" else ("bf16" if _cuda_bf16() else "fp16")
    attn = t.attn_implementation
    if attn == "auto":
        # flash-attention 2 uses the padding-free cu_seq_lens directly; sdpa gets a block-diagonal mask
        # that transformers derives from position_ids (correct, but quadratic in the flattened length)
        has_fa2 = importlib.util.find_spec("flash_attn") is not None
        attn = "flash_attention_2" if device == "cuda" and has_fa2 else "sdpa"
    liger = (
        t.use_liger_kernel == "auto"
        and device == "cuda"
        and importlib.util.find_spec("liger_kernel") is not None
    )
    return Runtime(
        device=device,
        compute_dtype=compute,
        mixed_precision=mp,
        optim=t.optim[device],
        gradient_checkpointing=t.gradient_checkpointing[device],
        attn_implementation=attn,
        use_liger_kernel=liger,
        loss_head=t.loss_head[device],
        padding_free=t.padding_free[device],
        weights="none" if not t.quant.load_in_4bit else ("4bit" if device == "cuda" else t.cpu_weights),
    )


def quant_dict(t: TrainSettings, rt: Runtime) -> dict[str, Any] | None:
    if not t.quant.load_in_4bit:
        return None
    return {**t.quant.model_dump(), "compute_dtype": rt.compute_dtype}


def load_base(model_path: Path, dtype: str, t: TrainSettings, rt: Runtime):
    """The frozen base model, ready for (Q)LoRA training: loaded 4-bit, or on CPU with `cpu_weights:
    roundtrip` as float32 weights holding the NF4 values (rbiqa.nf4: the same function, no dequantisation
    at every matmul)."""
    import torch
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM

    from rbiqa.models import bnb_config, keep_cpu_4bit_in_compute_dtype_

    kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype), "attn_implementation": rt.attn_implementation}
    if rt.weights == "roundtrip":
        from rbiqa.nf4 import cached_nf4_roundtrip_, model_fingerprint, roundtrip_cache_file

        model = AutoModelForCausalLM.from_pretrained(str(model_path), **kwargs)
        quant = quant_dict(t, rt)
        n, hit = cached_nf4_roundtrip_(
            model, quant, roundtrip_cache_file(model_fingerprint(model_path), quant)
        )
        log.info("NF4 round trip of %d frozen weights (%s the cache)", n, "from" if hit else "saved to")
        model.config.use_cache = False
        return model
    qc = bnb_config(quant_dict(t, rt))
    if qc is not None:
        kwargs["quantization_config"] = qc
    if rt.device == "cuda":
        kwargs["device_map"] = {"": 0}
    model = AutoModelForCausalLM.from_pretrained(str(model_path), **kwargs)
    if qc is not None:
        # evaluation during training runs in eval mode: it must compute what training computes
        keep_cpu_4bit_in_compute_dtype_(model)
        # fp32 norms/embeddings, input grads enabled, and checkpointing set up the way PEFT expects
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=rt.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    model.config.use_cache = False
    return model


def lora_config(t: TrainSettings):
    from peft import LoraConfig

    lc = t.lora
    return LoraConfig(
        r=lc.r,
        lora_alpha=lc.alpha,
        lora_dropout=lc.dropout,
        use_rslora=lc.use_rslora,
        bias=lc.bias,
        target_modules=list(lc.target_modules),
        task_type="CAUSAL_LM",
    )


def adapter_dtype(rt: Runtime) -> str:
    """bf16 adapters only with bf16 compute (the QLoRA recipe); float32 otherwise.

    TRL casts the LoRA weights of a quantized model to bf16. With float32 compute on CPU that runs every
    adapter matmul in slow emulated bf16 and rounds Adam's small updates away; with fp16 autocast the
    grad scaler refuses non-fp32 parameters. So those cases go back to float32.
    """
    return "bfloat16" if rt.compute_dtype == "bfloat16" else "float32"


def cast_trainable(model, dtype: str) -> int:
    """Cast the trainable (adapter) weights to dtype; returns how many tensors changed."""
    import torch

    target = getattr(torch, dtype)
    n = 0
    for p in model.parameters():
        if p.requires_grad and p.is_floating_point() and p.dtype != target:
            p.data = p.data.to(target)
            n += 1
    return n
