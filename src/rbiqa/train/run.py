"""One training job: validate, load, train, save the adapter, log, summary and manifest.

`train_arm` takes explicit paths so tests can run it on a tiny model in a temp dir; `main` is the stage,
which takes every path from rbiqa.paths.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from rbiqa import paths as P
from rbiqa.config import to_container
from rbiqa.io import read_json, sha256_path, sha256_text, stable_json, write_json
from rbiqa.manifest import write_manifest
from rbiqa.stages import flat, train_inputs
from rbiqa.study import ArmSpec
from rbiqa.train.settings import RunSettings, build_settings

log = logging.getLogger(__name__)

FINGERPRINT = "run_fingerprint.json"


@dataclass
class Job:
    """Where one training job reads and writes."""

    train_path: Path
    val_paths: dict[str, Path]  # eval-loss sets by rbiqa.train.trainer.EVAL_SETS name
    adapter_dir: Path
    checkpoint_dir: Path
    fingerprint: str = ""
    progress: bool = True
    extra_callbacks: list = field(default_factory=list)
    resume_from: str | None = None  # explicit checkpoint path (tests); else train.resume decides
    mix_paths: dict[str, Path] = field(default_factory=dict)  # pools mixed in (train.mix > 0)
    # refine arms: the adapter the round starts from, and (mining set, its judgments) the rows come from
    init_adapter: Path | None = None
    mining: tuple[Path, Path] | None = None
    inputs: list[Path] = field(default_factory=list)  # what the manifest records (rbiqa.stages)

    @property
    def outputs(self) -> dict[str, Path]:
        d = self.adapter_dir
        return {
            "adapter": d / "adapter_model.safetensors",
            "adapter_config": d / "adapter_config.json",
            "log": d / "trainer_log.csv",
            "summary": d / "train_summary.json",
            "manifest": d / "manifest.json",
        }


def set_threads(n: int | None) -> None:
    import torch

    if n:
        torch.set_num_threads(n)


def resume_point(job: Job, run: RunSettings) -> str | None:
    """Latest complete checkpoint of an interrupted run with the same config and data (partial ones are
    deleted: rbiqa.train.checkpoints), else None and a clean dir."""
    if job.resume_from:
        return job.resume_from
    from rbiqa.train.checkpoints import last_complete

    d = job.checkpoint_dir
    fp_file = d / FINGERPRINT
    if d.exists():
        same = fp_file.exists() and read_json(fp_file).get("fingerprint") == job.fingerprint
        last = last_complete(d) if same and run.train.resume else None
        if last:
            log.info("resuming from %s (same config and data as the interrupted run)", last)
            return str(last)
        shutil.rmtree(d)
    d.mkdir(parents=True, exist_ok=True)
    write_json(fp_file, {"fingerprint": job.fingerprint})
    return None


def train_arm(run: RunSettings, job: Job) -> dict[str, Any]:
    """Train one arm; returns the summary that is also written to train_summary.json."""
    import torch
    from transformers import set_seed

    from rbiqa.models import load_tokenizer
    from rbiqa.train.data import build_datasets
    from rbiqa.train.model import load_base, resolve_runtime
    from rbiqa.train.outputs import loss_summary, peak_memory, save_adapter, write_trainer_log
    from rbiqa.train.trainer import SELECTION_METRIC, build_trainer, planned_steps

    t0 = time.perf_counter()
    t = run.train
    set_threads(t.threads)
    rt = resolve_runtime(t)
    log.info("arm %s: k=%d, seed %d, runtime %s", run.arm, run.n_rephrasings, run.train_seed, rt.as_dict())
    if rt.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    set_seed(run.train_seed)
    tokenizer = load_tokenizer(run.model_path, padding_side="right")
    train_ds, eval_ds, counts = build_datasets(
        run, tokenizer, job.train_path, job.val_paths, job.mix_paths, job.mining
    )
    epochs = counts["num_train_epochs"]
    resume = resume_point(job, run)
    log.info("loading %s (4-bit: %s)", run.model_path, t.quant.load_in_4bit)
    model = load_base(run.model_path, run.model_dtype, t, rt)
    if job.init_adapter is not None:
        from peft import PeftModel

        # the round trains the starting arm's adapter further (its LoRA config comes with it)
        log.info("continuing the adapter in %s", job.init_adapter)
        model = PeftModel.from_pretrained(model, str(job.init_adapter), is_trainable=True)
    trainer, recorder = build_trainer(
        run,
        rt,
        model,
        tokenizer,
        train_ds,
        eval_ds,
        job.checkpoint_dir,
        job.extra_callbacks,
        job.progress,
        epochs,
    )
    resumed_at = _resume_log(trainer, recorder, resume)
    trainable, total = trainer.model.get_nb_trainable_parameters()
    log.info(
        "trainable params %d of %d (%.3f%%); %d planned steps",
        trainable,
        total,
        100 * trainable / total,
        planned_steps(run, len(train_ds), epochs),
    )
    t_train = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume)
    train_wall = time.perf_counter() - t_train

    out = job.outputs
    save_adapter(trainer.model, job.adapter_dir)
    write_trainer_log(out["log"], recorder.rows)
    state = trainer.state
    summary = {
        "arm": run.arm,
        "n_rephrasings": run.n_rephrasings,
        "seed": run.seed,
        "train_seed": run.train_seed,
        "device": rt.device,
        "device_name": torch.cuda.get_device_name(0) if rt.device == "cuda" else "cpu",
        "torch_threads": torch.get_num_threads(),
        "runtime": rt.as_dict(),
        "data": counts,
        "trainable_params": int(trainable),
        "total_params": int(total),
        "global_step": state.global_step,
        "max_steps": state.max_steps,
        "epochs": state.epoch,
        "stopped_early": state.global_step < state.max_steps,
        "resumed_from": resume,
        "started_from_adapter": str(job.init_adapter) if job.init_adapter else None,
        "resumed_at_step": resumed_at,  # steps before it ran in the interrupted job, not this one
        # which weights were shipped, and why (rbiqa.train.trainer: never selected on unseen facts)
        "selection": {
            "rule": t.selection,
            "metric": SELECTION_METRIC if t.selection == "val_paraphrase" else None,
            "shipped_step": (
                _step_of(state.best_model_checkpoint)
                if t.selection == "val_paraphrase" and state.best_model_checkpoint
                else state.global_step
            ),
            "best_metric": state.best_metric,
        },
        "best_eval_paraphrase_loss": state.best_metric,
        "train_loss_mean": result.training_loss,
        # TRL's count of tokens trained on in this process (prompt + completion, no padding)
        "total_tokens": int(getattr(trainer, "_total_train_tokens", 0) or _tokens(recorder.rows)),
        "train_wall_s": round(train_wall, 2),
        "wall_s": round(time.perf_counter() - t0, 2),
        **loss_summary(recorder.rows, torch.get_num_threads()),
        **peak_memory(rt.device),
        "adapter_sha256": sha256_path(out["adapter"]),
    }
    write_json(out["summary"], summary)
    if not t.keep_checkpoints:
        shutil.rmtree(job.checkpoint_dir, ignore_errors=True)
    return summary


def _resume_log(trainer, recorder, resume: str | None) -> int | None:
    """Carry the interrupted run's log rows and token count over, so the log covers every step."""
    from rbiqa.train.checkpoints import read_seal

    if not resume:
        return None
    sealed = read_seal(Path(resume))
    if sealed is None:  # an explicit resume_from of a checkpoint without a seal: the log starts here
        log.warning("%s has no valid seal: trainer_log.csv starts at the resumed step", resume)
        return _step_of(resume)
    recorder.restore(sealed["log_rows"], sealed["total_train_tokens"])
    trainer._total_train_tokens = sealed["total_train_tokens"]  # TRL's running count (`num_tokens`)
    return sealed["step"]


def _step_of(checkpoint: str | None) -> int | None:
    return int(checkpoint.rsplit("-", 1)[-1]) if checkpoint else None


def _tokens(rows: list[dict[str, Any]]) -> int:
    """Fallback: the last cumulative token count TRL logged."""
    counts = [r["num_tokens"] for r in rows if r.get("num_tokens")]
    return int(max(counts)) if counts else 0


def stage_job(cfg: DictConfig, run: RunSettings) -> Job:
    """The stage's job, its files from the stage registry; the fingerprint (what an interrupted run must
    share to be resumed) hashes the config and every data input."""
    mix = {pool: P.MIX_POOLS[pool] for pool, share in run.train.mix.items() if share}
    files = train_inputs(ArmSpec.model_validate(to_container(cfg.arm)), mix, Path(run.model_path))
    data = [p for k, v in files.items() if k not in ("stamp", "model") for p in flat({k: v})]
    inputs = {p.as_posix(): sha256_path(p) if p.exists() else None for p in data}
    sections = {k: to_container(cfg).get(k) for k in ("model", "train", "arm", "seed", "generate")}
    init_adapter, mining = None, None
    if run.adapter_of:
        init_adapter = files["init_adapter"].parent
        mining = (files["mining"], files["mining_judgments"])
    return Job(
        train_path=files["train"],
        val_paths={"paraphrase": files["val_para"], "unseen": files["val"]},
        adapter_dir=P.adapter_dir(run.arm),
        checkpoint_dir=P.arm_dir(run.arm) / "checkpoints",
        fingerprint=sha256_text(stable_json({"config": sections, "inputs": inputs})),
        mix_paths=mix,
        init_adapter=init_adapter,
        mining=mining,
        inputs=flat(files),
    )


def run_stage(cfg: DictConfig) -> dict[str, Any]:
    run = build_settings(cfg)  # every config check, before anything is loaded
    job = stage_job(cfg, run)
    summary = train_arm(run, job)
    out = job.outputs
    write_manifest(
        out["manifest"],
        "train",
        to_container(cfg),
        inputs=job.inputs,
        outputs=[out["adapter"], out["adapter_config"], out["log"], out["summary"]],
        extra={
            k: summary[k]
            for k in (
                "adapter_sha256",
                "trainable_params",
                "total_params",
                "peak_rss_bytes",
                "wall_s",
                "train_wall_s",
                "total_tokens",
                "global_step",
                "best_eval_paraphrase_loss",
                "selection",
                "device",
                "runtime",
            )
        }
        | {k: summary[k] for k in ("peak_cuda_allocated_bytes",) if k in summary}
        | {
            "rephrasings_per_source": summary["data"]["rephrasings_per_source"],
            "num_train_epochs": summary["data"]["num_train_epochs"],
        },
    )
    log.info(
        "adapter for %s in %s: %s",
        run.arm,
        job.adapter_dir,
        json.dumps(
            {
                k: summary[k]
                for k in (
                    "global_step",
                    "first_train_loss",
                    "last_train_loss",
                    "best_eval_paraphrase_loss",
                    "wall_s",
                )
            }
        ),
    )
    return summary
