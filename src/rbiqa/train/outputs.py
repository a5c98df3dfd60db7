"""What a train job leaves in results/<arm>/adapter/, written atomically file by file."""

from __future__ import annotations

import csv
import io
import resource
import shutil
import tempfile
from pathlib import Path
from typing import Any

from rbiqa.io import atomic_write

# eval_paraphrase_loss: held-out wordings of trained facts (selection); eval_unseen_loss: unseen facts
LOG_COLUMNS = (
    "step",
    "epoch",
    "train_loss",
    "eval_paraphrase_loss",
    "eval_unseen_loss",
    "learning_rate",
    "tokens_per_s",
)
ADAPTER_FILES = ("adapter_model.safetensors", "adapter_config.json")


def merge_log_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per step: a train log and an eval log of the same step share a line."""
    by_step: dict[int, dict[str, Any]] = {}
    for r in rows:
        merged = by_step.setdefault(int(r["step"]), {"step": int(r["step"])})
        merged.update({k: v for k, v in r.items() if k in LOG_COLUMNS and v is not None})
    return [by_step[s] for s in sorted(by_step)]


def write_trainer_log(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=LOG_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in merge_log_rows(rows):
        w.writerow({k: ("" if r.get(k) is None else r[k]) for k in LOG_COLUMNS})
    with atomic_write(path) as f:
        f.write(buf.getvalue())


def peak_memory(device: str) -> dict[str, Any]:
    """Peak resident memory of this process; on CUDA also the allocator's peak."""
    # ru_maxrss is in KiB on Linux: the process high-water mark, model load included
    out: dict[str, Any] = {"peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    if device == "cuda":
        import torch

        out["peak_cuda_allocated_bytes"] = int(torch.cuda.max_memory_allocated())
        out["peak_cuda_reserved_bytes"] = int(torch.cuda.max_memory_reserved())
    return out


def save_adapter(model, out_dir: Path) -> list[Path]:
    """Save the PEFT adapter via a temp dir so a crash never leaves a half-written adapter in place."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".save.") as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        paths = []
        for name in ADAPTER_FILES:
            src = Path(tmp) / name
            if not src.exists():
                raise FileNotFoundError(
                    f"PEFT did not write {name}; got {sorted(p.name for p in Path(tmp).iterdir())}"
                )
            shutil.move(str(src), out_dir / name)
            paths.append(out_dir / name)
    return paths


def loss_summary(rows: list[dict[str, Any]], threads: int = 1) -> dict[str, Any]:
    train = [r["train_loss"] for r in rows if r.get("train_loss") is not None]
    para = [r["eval_paraphrase_loss"] for r in rows if r.get("eval_paraphrase_loss") is not None]
    unseen = [r["eval_unseen_loss"] for r in rows if r.get("eval_unseen_loss") is not None]
    tps = [r["tokens_per_s"] for r in rows if r.get("tokens_per_s") is not None]
    return {
        "first_train_loss": train[0] if train else None,
        "last_train_loss": train[-1] if train else None,
        "first_eval_paraphrase_loss": para[0] if para else None,
        "final_eval_paraphrase_loss": para[-1] if para else None,
        "first_eval_unseen_loss": unseen[0] if unseen else None,
        "final_eval_unseen_loss": unseen[-1] if unseen else None,
        "n_evals": len(para),
        # training steps only (evaluation and checkpointing excluded): prompt + answer tokens per second
        "mean_tokens_per_s": sum(tps) / len(tps) if tps else None,
        "mean_tokens_per_s_per_thread": sum(tps) / len(tps) / threads if tps else None,
    }
