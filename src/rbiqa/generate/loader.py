"""Loading the weights a generation job runs on, once, and only if some answer is not cached.

A fully cached rerun never reads the weights. Which weights: see rbiqa.nf4 (every arm runs
on the NF4 base that QLoRA training used; a LoRA adapter is attached, and merged where possible).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rbiqa import models
from rbiqa.generate.runner import FatalGenerationError
from rbiqa.io import InputError
from rbiqa.nf4 import (
    CPU_MODES,
    cached_nf4_roundtrip_,
    cpu_quant,
    roundtrip_cache_file,
)

log = logging.getLogger(__name__)


def weights_plan(g: DictConfig) -> dict[str, Any]:
    """How the base weights are prepared (rbiqa.nf4): {"mode": ..., "quant": ...}."""
    quant = OmegaConf.to_container(g.quant, resolve=True) if g.get("quant") else None
    if not quant or not quant.get("load_in_4bit", False):
        return {"mode": "none", "quant": None}
    if models.device() == "cuda":
        return {"mode": "4bit", "quant": quant}
    mode = g.get("cpu_quant_mode", "roundtrip")
    if mode not in CPU_MODES:
        raise InputError(f"generate.cpu_quant_mode must be one of {', '.join(CPU_MODES)}, got {mode!r}")
    if mode == "4bit":
        return {"mode": mode, "quant": cpu_quant(quant)}
    return {"mode": mode, "quant": quant if mode == "roundtrip" else None}


def uses_prefix_decoding(g: DictConfig) -> bool:
    """Greedy answers without extra generate() options go through rbiqa.prefix_decoding (same tokens,
    the shared system/few-shot prefix encoded once); anything else through model.generate."""
    return bool(g.get("prefix_cache", True)) and not g.do_sample and not g.get("generate_kwargs")


class LazyModel:
    """Loads model + tokenizer on the first call, so fully cached runs never touch the weights."""

    def __init__(self, cfg: DictConfig, adapter: Path | None, plan: dict[str, Any], model_fp: str):
        self.cfg, self.adapter, self.plan, self.model_fp = cfg, adapter, plan, model_fp
        self.model = self.tokenizer = None
        self.load_seconds = 0.0
        self.merged = False
        self.n_roundtrip = 0
        self.prefix_decoder = None

    def load(self) -> None:
        t0 = time.perf_counter()
        g, m = self.cfg.generate, self.cfg.model
        tok_dir = (
            self.adapter if self.adapter and (self.adapter / "tokenizer_config.json").exists() else m.path
        )
        self.tokenizer = models.load_tokenizer(tok_dir, padding_side="left")
        four_bit = self.plan["mode"] == "4bit"
        model = models.load_causal_lm(m.path, dtype=m.dtype, quant=self.plan["quant"] if four_bit else None)
        if self.plan["mode"] == "roundtrip":
            # before the adapter is attached: LoRA layers wrap these Linear modules
            cache_file = roundtrip_cache_file(self.model_fp, self.plan["quant"])
            self.n_roundtrip, hit = cached_nf4_roundtrip_(model, self.plan["quant"], cache_file)
            log.info(
                "NF4 round trip of %d weights (%s %s)",
                self.n_roundtrip,
                "read from" if hit else "saved to",
                cache_file,
            )
        if self.adapter is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(self.adapter))
            if not four_bit and g.get("merge_adapter", True):
                model = model.merge_and_unload()
                self.merged = True
        model.eval()
        self.model = model
        self.load_seconds = time.perf_counter() - t0
        log.info(
            "loaded %s%s in %.1fs (weights: %s, %d NF4 round-tripped, adapter merged: %s)",
            m.path,
            f" + {self.adapter}" if self.adapter else "",
            self.load_seconds,
            self.plan["mode"],
            self.n_roundtrip,
            self.merged,
        )

    def loaded(self):
        """(model, tokenizer), loading them on first use."""
        if self.model is None:
            try:
                self.load()
            except Exception as e:
                raise FatalGenerationError(f"cannot load the model for {self.cfg.arm.name}: {e}") from e
        return self.model, self.tokenizer

    def __call__(self, conversations: list, limits: list[int | None] | None = None) -> list[dict[str, Any]]:
        """Greedy (or sampled) answers; `limits` are the items' decoding budgets (None: max_new_tokens)."""
        self.loaded()
        g = self.cfg.generate
        cap = int(g.max_new_tokens)
        limits = [cap if n is None else min(int(n), cap) for n in (limits or [None] * len(conversations))]
        if uses_prefix_decoding(g):
            if self.prefix_decoder is None:
                from rbiqa.prefix_decoding import PrefixGroupedGreedy

                self.prefix_decoder = PrefixGroupedGreedy(self.model, self.tokenizer, cap)
            return self.prefix_decoder(conversations, limits)
        rows = models.chat_generate(
            self.model,
            self.tokenizer,
            conversations,
            max_new_tokens=max(limits),
            batch_size=len(conversations),
            do_sample=bool(g.do_sample),
            temperature=float(g.temperature),
            top_p=float(g.top_p),
            seed=int(self.cfg.seed),
            progress=False,
            generate_kwargs=OmegaConf.to_container(g.generate_kwargs, resolve=True)
            if g.get("generate_kwargs")
            else None,
        )
        return [models.truncate_output(r, n, self.tokenizer) for r, n in zip(rows, limits, strict=True)]
