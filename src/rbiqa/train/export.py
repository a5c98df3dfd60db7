"""Merge a trained LoRA adapter into full-precision base weights and save them as safetensors.

`python -m rbiqa.train.export experiment=<exp> arm=<ft arm>` writes results/<arm>/merged/. A merged
model needs neither PEFT nor bitsandbytes to run, which is what serving stacks (vLLM, llama.cpp) want.

`train.export.base` picks the weights the adapter is added to:
- dequantized (default): the NF4 weights the adapter was trained against, dequantized. The merged model
  then computes what base-4bit + adapter computed during training, up to rounding.
- original: the unquantized checkpoint. Slightly different from what was trained (by the NF4 error), but
  it is what `PeftModel.from_pretrained(unquantized base, adapter)` computes.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from rbiqa import paths as P
from rbiqa.config import stage_main, to_container
from rbiqa.io import InputError, sha256_path
from rbiqa.manifest import write_manifest
from rbiqa.train.settings import RunSettings, build_settings

log = logging.getLogger(__name__)

MERGED_FILES = ("model.safetensors", "config.json")


def merged_dir(arm: str) -> Path:
    return P.arm_dir(arm) / "merged"


def load_export_base(run: RunSettings):
    """The base the adapter is merged into, as float32 nn.Linear weights."""
    import torch
    from transformers import AutoModelForCausalLM

    from rbiqa.models import bnb_config

    t = run.train
    if t.export.base == "original" or not t.quant.load_in_4bit:
        return AutoModelForCausalLM.from_pretrained(str(run.model_path), dtype=torch.float32)
    quant = {**t.quant.model_dump(), "compute_dtype": "float32"}
    kwargs = {"dtype": torch.float32, "quantization_config": bnb_config(quant)}
    if torch.cuda.is_available():
        kwargs["device_map"] = {"": 0}
    model = AutoModelForCausalLM.from_pretrained(str(run.model_path), **kwargs)
    model = model.dequantize(dtype=torch.float32)
    return model.to("cpu")


def merge(run: RunSettings, adapter_dir: Path, out_dir: Path) -> list[Path]:
    """Write the merged model (single safetensors file) and the tokenizer to out_dir; returns the files."""
    import torch
    from peft import PeftModel

    from rbiqa.models import load_tokenizer

    if not (adapter_dir / "adapter_config.json").exists():
        raise InputError(
            f"no adapter in {adapter_dir}: train the arm first (`python -m rbiqa.train arm={run.arm}`)"
        )
    base = load_export_base(run)
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged = merged.to(getattr(torch, run.train.export.dtype))
    out_dir.mkdir(parents=True, exist_ok=True)
    # one shard, so the declared output is a single file whatever the model size
    merged.save_pretrained(out_dir, safe_serialization=True, max_shard_size="1000GB")
    load_tokenizer(run.model_path, padding_side="left").save_pretrained(out_dir)
    files = [out_dir / n for n in MERGED_FILES]
    missing = [f for f in files if not f.exists()]
    if missing:
        raise FileNotFoundError(f"merge did not write {missing}")
    return files


def run_export(cfg: DictConfig) -> Path:
    run = build_settings(cfg)
    adapter = P.adapter_dir(run.arm)
    out = merged_dir(run.arm)
    files = merge(run, adapter, out)
    write_manifest(
        out / "manifest.json",
        "train",  # no separate STAGE_ORDER entry: export is a by-product of the train stage
        to_container(cfg),
        inputs=[
            adapter / "adapter_model.safetensors",
            adapter / "adapter_config.json",
            Path(run.model_path) / "manifest.json",
        ],
        outputs=files,
        extra={
            "export_base": run.train.export.base,
            "dtype": run.train.export.dtype,
            "merged_sha256": sha256_path(files[0]),
        },
    )
    log.info("merged %s into %s", adapter, out)
    return out


@stage_main
def main(cfg: DictConfig) -> None:
    run_export(cfg)


if __name__ == "__main__":
    main()
