"""Validated training settings, built from the Hydra config before anything heavy is imported.

A typo in an arm file (rank 0, a negative learning rate, a misspelt target module) should cost a second,
not the minutes it takes to load and quantize a model, so every check that can run on the config alone
runs here, and `rbiqa.train` calls it first.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from omegaconf import DictConfig, OmegaConf
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rbiqa.io import InputError
from rbiqa.study import TRAINED_KINDS, arm_spec

# Linear layers a LoRA adapter may target, per architecture family (from each family's modeling code).
# Families not listed are checked by instantiating the model skeleton on the meta device.
KNOWN_PROJECTIONS: dict[str, frozenset[str]] = {
    family: frozenset({"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"})
    for family in ("llama", "qwen2", "qwen3", "mistral")
}

DeviceChoice = Literal["auto", "cpu", "cuda"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoraSettings(_Strict):
    r: int = Field(gt=0)
    alpha: float = Field(gt=0)
    dropout: float = Field(ge=0, lt=1)
    use_rslora: bool
    bias: Literal["none", "all", "lora_only"] = "none"
    target_modules: list[str] = Field(min_length=1)


class QuantSettings(_Strict):
    load_in_4bit: bool
    quant_type: Literal["nf4", "fp4"] = "nf4"
    double_quant: bool = True
    compute_dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"


class ExportSettings(_Strict):
    base: Literal["dequantized", "original"]
    dtype: Literal["float32", "bfloat16", "float16"]


class RoundSettings(_Strict):
    """The extra round of a refine arm (rbiqa.train.round): a fixed number of optimizer steps, the same
    for the mined rows and their random control, so the two differ only in which rows they train on."""

    steps: int = Field(gt=0)
    learning_rate: float | None = Field(default=None, gt=0)  # None: train.learning_rate
    selection: Literal["val_paraphrase", "final"]


class TrainSettings(_Strict):
    name: str
    device: DeviceChoice = "auto"
    threads: int | None = Field(default=None, gt=0)
    seed_replicate: int = Field(ge=0)
    curriculum: bool
    system_prompt: str | None = None
    lora: LoraSettings
    quant: QuantSettings
    learning_rate: float = Field(gt=0)
    lr_scheduler_type: str
    warmup_ratio: float = Field(ge=0, lt=1)
    weight_decay: float = Field(ge=0)
    max_grad_norm: float = Field(gt=0)
    num_train_epochs: float | None = Field(default=None, gt=0)
    exposures_per_fact: float | None = Field(default=None, gt=0)
    mix: dict[Literal["abstention", "general"], float] = Field(default_factory=dict)
    round: RoundSettings
    max_steps: int = -1
    per_device_train_batch_size: int = Field(gt=0)
    gradient_accumulation_steps: int = Field(gt=0)
    per_device_eval_batch_size: int = Field(gt=0)
    max_seq_len: int = Field(gt=8)
    optim: dict[Literal["cpu", "cuda"], str]
    mixed_precision: Literal["auto", "no", "bf16", "fp16"]
    gradient_checkpointing: dict[Literal["cpu", "cuda"], bool]
    loss_head: dict[Literal["cpu", "cuda"], Literal["fused", "full", "completion"]]
    cpu_weights: Literal["4bit", "roundtrip"] = "4bit"
    torch_compile: bool = False
    attn_implementation: Literal["auto", "sdpa", "eager", "flash_attention_2"]
    padding_free: dict[Literal["cpu", "cuda"], bool]
    packing: bool
    packing_strategy: Literal["bfd", "bfd_split", "wrapped"] = "bfd"
    use_liger_kernel: Literal["auto", "never"]
    max_train_rows: int | None = Field(default=None, gt=0)
    max_eval_rows: int | None = Field(default=None, gt=0)
    eval_steps: float = Field(gt=0)  # optimizer steps between evals (and checkpoints); < 1: a share of them
    logging_steps: int = Field(gt=0)
    selection: Literal["val_paraphrase", "final"] = "val_paraphrase"
    early_stopping_patience: int = Field(ge=0)
    early_stopping_threshold: float = Field(ge=0)
    save_total_limit: int = Field(ge=1)
    keep_checkpoints: bool
    resume: bool
    export: ExportSettings

    @field_validator("eval_steps")
    @classmethod
    def _eval_steps(cls, v: float) -> float:
        if v >= 1 and v != int(v):
            raise ValueError("must be a whole number of steps, or a share of the training below 1")
        return int(v) if v >= 1 else v

    @field_validator("max_steps")
    @classmethod
    def _steps(cls, v: int) -> int:
        if v == 0 or v < -1:
            raise ValueError("must be -1 (train for num_train_epochs) or a positive step count")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> TrainSettings:
        if self.max_steps == -1 and (self.num_train_epochs is None) == (self.exposures_per_fact is None):
            raise ValueError(
                "set exactly one of num_train_epochs (passes over the arm's rows) and exposures_per_fact "
                "(times each source fact is trained on, in any of its wordings: compute-matched arms), or "
                "a positive max_steps"
            )
        if self.early_stopping_patience and self.selection != "val_paraphrase":
            raise ValueError("early stopping needs selection=val_paraphrase (the loss it stops on)")
        if any(v < 0 for v in self.mix.values()) or sum(self.mix.values()) >= 1:
            raise ValueError(f"mix shares must be >= 0 and sum to less than 1, got {self.mix}")
        if any(self.mix.values()) and self.curriculum:
            raise ValueError(
                "mix with curriculum=true: the mixed-in rows have no difficulty to order them by"
            )
        if self.packing and self.curriculum:
            raise ValueError(
                "packing=true reorders rows into bins (best-fit decreasing), which destroys the curriculum "
                "order; use padding_free=true (same throughput benefit, order kept) with curriculum=true"
            )
        if self.packing and not all(self.padding_free.values()):
            raise ValueError(
                "packing=true needs padding_free=true on every device: packed rows are only kept apart by "
                "per-row position_ids"
            )
        return self

    @property
    def effective_batch_size(self) -> int:
        return self.per_device_train_batch_size * self.gradient_accumulation_steps


class RunSettings(_Strict):
    """Everything a train job needs from outside cfg.train."""

    arm: str
    arm_kind: str
    n_rephrasings: int = Field(ge=0)
    adapter_of: str | None = None  # refine: the arm whose adapter the round continues
    round_rows: str | None = None  # refine: which rows the round trains on (rbiqa.study.RoundRows)
    # rephrase.k: how many rephrasings per question the rephrase stage was asked for (None: unknown)
    rephrase_k: int | None = Field(default=None, ge=0)
    seed: int
    model_name: str
    model_path: Path
    model_dtype: str
    system_prompt: str | None
    train: TrainSettings

    @property
    def train_seed(self) -> int:
        """The split seed is cfg.seed; replicates change only the training/data-order seed."""
        return self.seed + self.train.seed_replicate


def _format_errors(e: ValidationError, prefix: str) -> str:
    lines = []
    for err in e.errors():
        where = ".".join(str(p) for p in (prefix, *err["loc"]))
        got = f" (got {err['input']!r})" if not isinstance(err["input"], dict) else ""
        lines.append(f"  {where}: {err['msg']}{got}")
    return "invalid training config:\n" + "\n".join(lines)


def model_type(model_path: Path) -> str:
    cfg_file = Path(model_path) / "config.json"
    if not cfg_file.exists():
        raise InputError(
            f"no model config at {cfg_file}: run `python -m rbiqa.fetch_model` (or "
            "`snakemake --cores 1 fetch_model`) before training"
        )
    return json.loads(cfg_file.read_text(encoding="utf-8"))["model_type"]


def linear_module_names(model_path: Path) -> frozenset[str]:
    """Leaf names of the model's Linear layers, from its architecture alone (no weights are read)."""
    mtype = model_type(model_path)
    if mtype in KNOWN_PROJECTIONS:
        return KNOWN_PROJECTIONS[mtype]
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(str(model_path))
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config)
    names = {n.rsplit(".", 1)[-1] for n, m in skeleton.named_modules() if isinstance(m, torch.nn.Linear)}
    return frozenset(names - {"lm_head"})


def check_target_modules(targets: list[str], model_path: Path) -> None:
    valid = linear_module_names(model_path)
    unknown = sorted(set(targets) - valid)
    if unknown:
        raise InputError(
            f"train.lora.target_modules has {unknown}, which the {model_type(model_path)} model at "
            f"{model_path} does not have; valid names are {sorted(valid)}"
        )


def _as_dict(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def build_settings(cfg: DictConfig, check_model: bool = True) -> RunSettings:
    """Validate the composed config; raise InputError with every problem listed, before any model load."""
    arm = cfg.get("arm") or {}
    if arm.get("kind") not in TRAINED_KINDS:
        raise InputError(
            f"arm {arm.get('name')!r} is of kind {arm.get('kind')!r}; only arms of kinds {list(TRAINED_KINDS)} "
            "are trained"
        )
    n_rephrasings = arm.get("n_rephrasings")
    if arm.get("kind") == "refine":  # the round trains on rows its starting arm was trained on
        n_rephrasings = arm_spec(arm.get("adapter_of")).n_rephrasings
    generate = cfg.get("generate") or {}
    train_raw = _as_dict(cfg.train)
    # One system prompt for training and generation: a fine-tuned model is evaluated with the exact
    # system turn it was trained with. The train group's own value is only a fallback.
    system_prompt = generate.get("system_prompt") or train_raw.get("system_prompt")
    try:
        train = TrainSettings.model_validate(train_raw)
    except ValidationError as e:
        raise InputError(_format_errors(e, "train")) from None
    if arm.get("kind") == "refine":
        r = train.round
        train = train.model_copy(
            update={
                "max_steps": r.steps,
                "learning_rate": r.learning_rate or train.learning_rate,
                "selection": r.selection,
                "early_stopping_patience": 0,
            }
        )
    try:
        run = RunSettings.model_validate(
            {
                "arm": arm.get("name"),
                "arm_kind": arm.get("kind"),
                "n_rephrasings": n_rephrasings,
                "adapter_of": arm.get("adapter_of"),
                "round_rows": arm.get("round_rows"),
                "rephrase_k": (cfg.get("rephrase") or {}).get("k"),
                "seed": cfg.seed,
                "model_name": cfg.model.name,
                "model_path": cfg.model.path,
                "model_dtype": cfg.model.dtype,
                "system_prompt": system_prompt,
                "train": train,
            }
        )
    except ValidationError as e:
        e_msg = _format_errors(e, "")
        raise InputError(e_msg.replace("  .n_rephrasings", "  arm.n_rephrasings")) from None
    if run.rephrase_k is not None and run.n_rephrasings > run.rephrase_k:
        raise InputError(
            f"arm {run.arm!r} trains on {run.n_rephrasings} rephrasing(s) per question but the rephrase stage "
            f"is configured for rephrase.k={run.rephrase_k}; raise rephrase.k (and rerun rephrase) or pick "
            "an arm with fewer"
        )
    if check_model:
        check_target_modules(train.lora.target_modules, run.model_path)
    return run
