"""The NF4 base of QLoRA, on CPU at float32 speed: shared by training and generation.

The adapters are trained against the 4-bit NF4 base (cfg.train.quant), so the fine-tuned arms must run
on those weights, and the prompting arms on the same ones, or a score difference could come from the
quantization rather than from the arm. On CUDA the model is simply loaded 4-bit. On CPU, bitsandbytes'
4-bit kernels dequantize every weight at every matmul (forward and backward), which is several times
slower than a float32 matmul; `nf4_roundtrip_` instead replaces each weight that 4-bit loading would
quantize by dequantize(quantize(W)) once, which gives the 4-bit model's weight values at float32 speed
(a test compares them with a bitsandbytes-loaded model). The base is frozen in QLoRA, so training over
these weights computes the same function and gradients as training over the 4-bit storage.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rbiqa import paths as P
from rbiqa.io import read_json, sha256_path, sha256_text, stable_json

CPU_MODES = ("roundtrip", "4bit", "none")
WEIGHTS_CACHE = P.CACHE / "generate" / "weights"


def model_fingerprint(model_path: Path) -> str:
    """Identity of the base weights: the fetch manifest's output hashes, else a hash of the directory."""
    manifest = Path(model_path) / "manifest.json"
    if manifest.exists():
        return sha256_text(stable_json(read_json(manifest).get("outputs", {})))
    return sha256_path(model_path)


def skipped_modules(model) -> list[str]:
    """Modules transformers keeps unquantized when loading 4-bit (the output head and tied weights)."""
    from transformers.quantizers.base import get_keys_to_not_convert

    return get_keys_to_not_convert(model)


def _skipped(name: str, skip: list[str]) -> bool:
    return any(name == k or name.startswith(k + ".") or name.endswith("." + k) for k in skip)


def quantized_linears(model) -> dict[str, Any]:
    import torch

    skip = skipped_modules(model)
    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and not _skipped(name, skip)
    }


def nf4_roundtrip_(model, quant: dict[str, Any]) -> int:
    """In place: every nn.Linear weight that 4-bit loading would quantize becomes its NF4 round trip.

    Returns how many weights were replaced.
    """
    import bitsandbytes.functional as F
    import torch

    n = 0
    with torch.no_grad():
        for module in quantized_linears(model).values():
            w = module.weight.data
            q, state = F.quantize_4bit(
                w,
                quant_type=quant.get("quant_type", "nf4"),
                compress_statistics=bool(quant.get("double_quant", True)),
                blocksize=int(quant.get("blocksize", 64)),
            )
            module.weight.data = F.dequantize_4bit(q, state).to(w.dtype).reshape(w.shape)
            n += 1
    return n


def cpu_quant(quant: dict[str, Any]) -> dict[str, Any]:
    """Real 4-bit loading on CPU computes in float32, as training does there (no native bf16 on AVX2)."""
    return {**quant, "compute_dtype": "float32"}


def roundtrip_cache_file(model_fingerprint: str, quant: dict[str, Any]) -> Path:
    """One file per (base weights, quantization settings, bitsandbytes version); the compute dtype does not
    change the stored values, so training and generation share the file."""
    from importlib.metadata import version

    stored = {k: v for k, v in quant.items() if k != "compute_dtype"}
    key = {"model": model_fingerprint, "quant": stored, "bitsandbytes": version("bitsandbytes")}
    return WEIGHTS_CACHE / f"{sha256_text(stable_json(key))[:24]}.safetensors"


def cached_nf4_roundtrip_(model, quant: dict[str, Any], cache_file: Path) -> tuple[int, bool]:
    """nf4_roundtrip_, reusing the round-tripped weights another job saved (~6 CPU-s saved per job).

    Returns (weights replaced, whether they came from the cache).
    """
    import torch
    from safetensors.torch import load_file, save_file

    linears = quantized_linears(model)
    names = {f"{name}.weight" for name in linears}
    if cache_file.exists():
        saved = load_file(cache_file)
        if set(saved) == names:
            with torch.no_grad():
                for name, module in linears.items():
                    module.weight.data.copy_(saved[f"{name}.weight"])
            return len(linears), True
    n = nf4_roundtrip_(model, quant)
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_name(f".{cache_file.name}.{os.getpid()}.tmp")
    save_file({f"{name}.weight": m.weight.data.contiguous() for name, m in linears.items()}, str(tmp))
    os.replace(tmp, cache_file)  # atomic: a parallel job reads either nothing or a whole file
    return n, False
