"""TRL SFTTrainer wiring: the SFTConfig built from the settings, and a callback that records the log.

Loss is on the completion only (answer + end-of-turn; see rbiqa.completion). Batches are padding-free
where `train.padding_free` says so for the device (CUDA): each micro-batch is one flattened row whose
per-example position_ids restart at 0. With flash-attention the kernels use those boundaries directly;
with sdpa/eager transformers turns them into a block-diagonal mask, so examples never attend to each
other (tests/unit/test_train_data.py checks this). Elsewhere (CPU) rows are padded, and rows of similar
length share a batch (`train_sampling_strategy="group_by_length"`). Curriculum arms use the Trainer's
documented `train_sampling_strategy="sequential"`.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

from transformers import EarlyStoppingCallback, Trainer, TrainerCallback
from trl import SFTTrainer

from rbiqa.train.checkpoints import CheckpointSeal, pause_if_asked
from rbiqa.train.model import Runtime
from rbiqa.train.settings import RunSettings

log = logging.getLogger(__name__)

# The eval-loss sets of a training job (rbiqa.train.data.build_datasets): held-out wordings of trained
# facts, which select the checkpoint and stop training, and unseen facts, which are only recorded.
EVAL_SETS = ("paraphrase", "unseen")
SELECTION_METRIC = "eval_paraphrase_loss"


class LogRecorder(TrainerCallback):
    """Keeps every Trainer log line, for trainer_log.csv and the progress log.

    tokens_per_s divides the tokens TRL counted since the previous train log by the time spent in
    training steps only, so evaluation and checkpointing do not dilute the throughput figure.
    """

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.max_steps = 0
        self._step_t0: float | None = None
        self._step_time = 0.0
        self._start_tokens = self._last_tokens = 0.0

    def restore(self, rows: list[dict[str, Any]], tokens: float) -> None:
        """Continue an interrupted run's log: its rows so far and TRL's token count at its checkpoint."""
        self.rows = list(rows)
        self._start_tokens = float(tokens)

    def on_train_begin(self, args, state, control, **kwargs):
        self.max_steps = state.max_steps
        self._step_time, self._last_tokens = 0.0, self._start_tokens

    def on_step_begin(self, args, state, control, **kwargs):
        self._step_t0 = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self._step_t0 is not None:
            self._step_time += time.perf_counter() - self._step_t0
            self._step_t0 = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = dict(logs or {})
        row: dict[str, Any] = {"step": state.global_step, "epoch": state.epoch}
        if "loss" in logs:
            row["train_loss"] = logs["loss"]
            row["learning_rate"] = logs.get("learning_rate")
            tokens = float(logs.get("num_tokens", 0.0))
            if tokens > self._last_tokens and self._step_time > 0:
                row["tokens_per_s"] = (tokens - self._last_tokens) / self._step_time
            row["num_tokens"] = tokens
            self._last_tokens, self._step_time = tokens, 0.0
        for name in EVAL_SETS:
            if f"eval_{name}_loss" in logs:
                row[f"eval_{name}_loss"] = logs[f"eval_{name}_loss"]
        if len(row) > 2:
            self.rows.append(row)
            shown = ", ".join(
                f"{k} {v:.4g}" for k, v in row.items() if k not in ("step", "num_tokens") and v is not None
            )
            log.info("step %d/%d: %s", state.global_step, self.max_steps, shown)


class StopAtStep(TrainerCallback):
    """Save and stop at a given step: simulates a job killed after a checkpoint (resume tests)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            control.should_save = True
            control.should_training_stop = True


class RbiqaSFTTrainer(SFTTrainer):
    """SFTTrainer with a choice of LM head for the loss (TRL's documented extension point).

    - fused: TRL's fused, chunked LM head. On CUDA (Triton) it projects only the labelled positions and
      never builds the full logits. Elsewhere it projects every position and recomputes the chunks in
      backward (for SmolLM2 on CPU ~1.5x the CPU time of a step with the model's own loss).
    - full: the model's own causal-LM loss over the logits of every position.
    - completion: logits only where the next token is trained (the answer and end-of-turn), through the
      model's `logits_to_keep`, so the 49K-word output projection skips the prompt tokens, forward and
      backward. Same labels and the same loss value as `full`.
    """

    def __init__(self, *args, loss_head: str = "fused", **kwargs):
        super().__init__(*args, **kwargs)
        self.loss_head = loss_head

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False):
        super().save_model(output_dir, _internal_call)
        if _internal_call and output_dir:  # a checkpoint save: the adapter is written, the rest is not yet
            pause_if_asked(output_dir, self.state.global_step)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.loss_head == "fused":
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        # no KV cache: transformers only derives the padding-free block-diagonal mask without one
        inputs = {**inputs, "use_cache": False}
        if self.loss_head == "completion":
            result = completion_loss(model, inputs, num_items_in_batch, return_outputs)
        else:
            result = Trainer.compute_loss(self, model, inputs, return_outputs, num_items_in_batch)
        if model.training:
            # the token count SFTTrainer keeps for its `num_tokens` log (tokens_per_s in trainer_log.csv)
            if "attention_mask" in inputs:
                n = int(inputs["attention_mask"].sum())
            else:
                n = int(inputs["position_ids"].size(1))
            self._total_train_tokens += n
            self._metrics["train"]["num_tokens"] = [self._total_train_tokens]
        return result


def completion_loss(model, inputs: dict[str, Any], num_items_in_batch=None, return_outputs: bool = False):
    """Causal-LM cross-entropy computed from the logits of the trained positions only.

    Position i predicts token i+1, so the kept positions are those whose next label is not -100 (the
    union over the batch's rows). Reduction as in transformers' ForCausalLMLoss: the sum over trained
    tokens divided by `num_items_in_batch` when the Trainer passes it (gradient accumulation), else the
    mean over this batch's trained tokens.
    """
    import torch
    import torch.nn.functional as F

    labels = inputs["labels"]
    targets = labels[:, 1:]
    keep = torch.nonzero((targets != -100).any(dim=0)).squeeze(1)
    model_inputs = {k: v for k, v in inputs.items() if k != "labels"}
    outputs = model(**model_inputs, logits_to_keep=keep)
    logits = outputs.logits
    tgt = targets[:, keep].to(logits.device)
    loss = F.cross_entropy(
        logits.float().reshape(-1, logits.size(-1)), tgt.reshape(-1), ignore_index=-100, reduction="sum"
    )
    n = num_items_in_batch if num_items_in_batch is not None else (tgt != -100).sum()
    loss = loss / torch.as_tensor(n, device=loss.device, dtype=loss.dtype).clamp(min=1)
    return (loss, outputs) if return_outputs else loss


def sft_config(run: RunSettings, rt: Runtime, output_dir: Path, epochs: float | None, progress: bool = True):
    from trl import SFTConfig

    t = run.train
    # TRL enforces no max_length with padding-free batches that are not packed; the rows are then
    # already truncated to max_seq_len by rbiqa.train.data.tokenize.
    max_length = t.max_seq_len if (t.packing or not rt.padding_free) else None
    # padded batches: rows of similar length share a batch (LengthGroupedSampler), so little is padded
    sampling = "sequential" if t.curriculum else "random" if rt.padding_free else "group_by_length"
    return SFTConfig(
        output_dir=str(output_dir),
        seed=run.train_seed,
        data_seed=run.train_seed,
        use_cpu=rt.device == "cpu",
        bf16=rt.mixed_precision == "bf16",
        fp16=rt.mixed_precision == "fp16",
        optim=rt.optim,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler_type,
        warmup_steps=t.warmup_ratio,  # a float < 1 is a fraction of the total steps in transformers 5
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        num_train_epochs=epochs if epochs is not None else 1.0,  # ignored while max_steps > 0
        max_steps=t.max_steps,
        per_device_train_batch_size=t.per_device_train_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        per_device_eval_batch_size=t.per_device_eval_batch_size,
        gradient_checkpointing=rt.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False} if rt.gradient_checkpointing else None,
        use_liger_kernel=rt.use_liger_kernel,
        torch_compile=t.torch_compile,
        completion_only_loss=True,
        padding_free=rt.padding_free,
        packing=t.packing,
        packing_strategy=t.packing_strategy,
        max_length=max_length,
        train_sampling_strategy=sampling,
        eval_strategy="steps",
        eval_steps=t.eval_steps,
        save_strategy="steps",
        save_steps=t.eval_steps,  # load_best_model_at_end needs a checkpoint at every evaluation
        save_total_limit=t.save_total_limit,
        # the shipped weights: the checkpoint with the lowest loss on held-out wordings of trained facts,
        # or the final ones; never selected on unseen facts (that picks the checkpoint that learned least)
        load_best_model_at_end=t.selection == "val_paraphrase",
        metric_for_best_model=SELECTION_METRIC,
        greater_is_better=False,
        logging_steps=t.logging_steps,
        logging_first_step=True,
        report_to="none",
        disable_tqdm=not progress,
        dataloader_num_workers=0,
    )


def build_trainer(
    run: RunSettings,
    rt: Runtime,
    model,
    tokenizer,
    train_ds,
    eval_ds,
    output_dir: Path,
    extra_callbacks: list | None = None,
    progress: bool = True,
    epochs: float | None = None,
):
    """(RbiqaSFTTrainer, LogRecorder). The trainer wraps `model` with the LoRA adapter. `eval_ds` maps
    EVAL_SETS names to datasets; `epochs` is the arm's passes over its rows (rbiqa.train.data.epochs_for)."""
    from peft import PeftModel

    from rbiqa.train.model import adapter_dtype, cast_trainable, lora_config

    recorder = LogRecorder()
    callbacks: list = [recorder, *(extra_callbacks or [])]
    if run.train.early_stopping_patience > 0:
        callbacks.append(
            EarlyStoppingCallback(
                early_stopping_patience=run.train.early_stopping_patience,
                early_stopping_threshold=run.train.early_stopping_threshold,
            )
        )
    trainer = RbiqaSFTTrainer(
        model=model,
        loss_head=rt.loss_head,
        args=sft_config(run, rt, output_dir, epochs, progress=progress),
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        # a refine arm's model already carries the adapter it continues
        peft_config=None if isinstance(model, PeftModel) else lora_config(run.train),
        callbacks=callbacks,
    )
    trainer.add_callback(CheckpointSeal(trainer, recorder))
    cast_trainable(trainer.model, adapter_dtype(rt))
    return trainer, recorder


def planned_steps(run: RunSettings, n_rows: int, epochs: float | None) -> int:
    t = run.train
    if t.max_steps > 0:
        return t.max_steps
    per_epoch = math.ceil(n_rows / t.per_device_train_batch_size / t.gradient_accumulation_steps)
    return max(1, math.ceil(per_epoch * (epochs or 1.0)))
