"""Loading the fetched base model (optionally 4-bit, optionally with an adapter), and batched chat
generation. Rephrasing, generation and the hf_local judge all share this code, so every stage builds
prompts with the model's own chat template and decodes the same way.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

Messages = list[dict[str, str]]


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def bnb_config(quant: Any | None):
    """BitsAndBytesConfig for NF4 QLoRA; bitsandbytes>=0.50 supports this on CPU as well as CUDA."""
    if not quant or not quant.get("load_in_4bit", False):
        return None
    import torch
    from transformers import BitsAndBytesConfig

    compute = quant.get("compute_dtype", "bfloat16")
    if compute == "auto":
        # CPU: float32 (bnb's bf16 NF4 matmul measured ~6x slower on an AVX2 CPU without native bf16)
        compute = (
            "float32" if device() == "cpu" else ("bfloat16" if torch.cuda.is_bf16_supported() else "float16")
        )
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=quant.get("quant_type", "nf4"),
        bnb_4bit_use_double_quant=bool(quant.get("double_quant", True)),
        bnb_4bit_compute_dtype=getattr(torch, compute),
    )


def keep_cpu_4bit_in_compute_dtype_(model) -> int:
    """Stop bitsandbytes from repacking CPU 4-bit weights for its bfloat16 kernel.

    On a CPU with AVX512-BF16, bitsandbytes rewrites every Linear4bit's weights at the first forward in eval
    mode and then computes in bfloat16, whatever `bnb_4bit_compute_dtype` says; for a matrix narrower than
    one quantization block the repacking fails outright. The same config would then compute a different
    function on different hosts. With the repacking off, every host dequantizes and multiplies in the
    compute dtype (float32 on CPU). Returns the number of modules changed; 0 off CPU or without 4-bit.
    """
    if device() != "cpu":
        return 0
    from bitsandbytes.nn import Linear4bit

    layers = [m for m in model.modules() if isinstance(m, Linear4bit)]
    for m in layers:
        m.support_avx512bf16_for_cpu = False
    return len(layers)


def load_tokenizer(model_path: str | Path, padding_side: str = "left"):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_path))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = padding_side
    return tok


def load_causal_lm(
    model_path: str | Path,
    dtype: str = "float32",
    quant: Any | None = None,
    adapter: str | Path | None = None,
):
    """Load the converted base model from data/models/<name>; raise a clear error if fetch_model never ran."""
    import torch
    from transformers import AutoModelForCausalLM

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model_path = Path(model_path)
    if not (model_path / "config.json").exists():
        raise FileNotFoundError(
            f"no model at {model_path}: run `snakemake --cores all fetch_model` "
            "(or `python -m rbiqa.fetch_model`) first"
        )
    kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype)}
    if (qc := bnb_config(quant)) is not None:
        kwargs["quantization_config"] = qc
        if device() == "cuda":
            kwargs["device_map"] = {"": 0}
    model = AutoModelForCausalLM.from_pretrained(str(model_path), **kwargs)
    if qc is None:
        model = model.to(device())
    else:
        keep_cpu_4bit_in_compute_dtype_(model)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    model.eval()
    return model


def truncate_output(row: dict[str, Any], limit: int, tokenizer) -> dict[str, Any]:
    """A chat_generate output cut to its first `limit` new tokens. Under greedy decoding this is exactly
    what decoding with that budget produces (the earlier tokens do not depend on the budget)."""
    ids = row["token_ids"]
    if len(ids) <= limit:
        return row
    ids = ids[:limit]
    return row | {
        "token_ids": ids,
        "text": tokenizer.decode(ids, skip_special_tokens=True).strip(),
        "n_new_tokens": len(ids),
    }


def render_prompts(tokenizer, conversations: Sequence[Messages]) -> list[str]:
    return [
        tokenizer.apply_chat_template(list(c), tokenize=False, add_generation_prompt=True)
        for c in conversations
    ]


def _strip_trailing(ids: list[int], pad_id: int | None) -> list[int]:
    """Drop the padding that `generate` appends to a sequence that finished before the rest of its batch."""
    end = len(ids)
    while end and ids[end - 1] == pad_id:
        end -= 1
    return ids[:end]


def chat_generate(
    model,
    tokenizer,
    conversations: Sequence[Messages],
    max_new_tokens: int = 128,
    batch_size: int = 8,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    progress: bool = True,
    generate_kwargs: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Batched generation with left padding.

    Returns one dict per conversation: text, token_ids (the new tokens without the padding that ends a
    sequence finished before its batch), n_prompt_tokens, n_new_tokens, seconds (the batch's wall
    time shared equally by its items, so per-item figures sum to the run's time). Batches are formed in
    input order (sorting by length would be faster but would make results depend on the batch mix).
    Mixed lengths give the same greedy output as one-by-one decoding; tests/unit/test_generate_batching.py
    checks token ids. `generate_kwargs` passes extra options (e.g. repetition_penalty) to `model.generate`.
    """
    import time

    import torch
    from tqdm.auto import tqdm

    if tokenizer.padding_side != "left":
        raise ValueError("batched generation needs tokenizer.padding_side='left'")
    prompts = render_prompts(tokenizer, conversations)
    results: list[dict[str, Any]] = []
    dev = next(model.parameters()).device
    bar = tqdm(total=len(prompts), desc="generate", unit="item", disable=not progress)
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        enc = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(dev)
        gen_kwargs: dict[str, Any] = {
            "max_new_tokens": max_new_tokens,
            "do_sample": do_sample,
            "pad_token_id": tokenizer.pad_token_id,
        }
        if do_sample:
            torch.manual_seed(seed + start)
            gen_kwargs.update(temperature=temperature, top_p=top_p)
        else:
            # greedy: clear sampling defaults a model's generation_config may carry
            gen_kwargs.update(temperature=None, top_p=None, top_k=None)
        gen_kwargs.update(generate_kwargs or {})
        t0 = time.perf_counter()
        with torch.no_grad():
            out = model.generate(**enc, **gen_kwargs)
        per_item = (time.perf_counter() - t0) / len(chunk)
        width = enc["input_ids"].shape[1]
        for i in range(len(chunk)):
            new = out[i, width:]
            n_new = int((new != tokenizer.pad_token_id).sum())
            results.append(
                {
                    "text": tokenizer.decode(new, skip_special_tokens=True).strip(),
                    "token_ids": _strip_trailing(new.tolist(), tokenizer.pad_token_id),
                    "n_prompt_tokens": int(enc["attention_mask"][i].sum()),
                    "n_new_tokens": n_new,
                    "seconds": per_item,
                }
            )
        bar.update(len(chunk))
    bar.close()
    return results
