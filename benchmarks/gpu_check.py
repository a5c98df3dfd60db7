"""The Python steps of benchmarks/gpu_check.sh (its header says what the check is and how to run it).

    python benchmarks/gpu_check.py info      --out W/info.json
    python benchmarks/gpu_check.py data      --out W/data
    python benchmarks/gpu_check.py build     --name qwen2_tiny --dest W/models/qwen2_tiny --tokenizer-dir T
    python benchmarks/gpu_check.py train     --model-dir W/models/qwen2_tiny --data W/data --work W/t --out R
    python benchmarks/gpu_check.py summarize --work W --out OUT/gpu_check.json

`train` is the real train stage's job (rbiqa.train.run.train_arm, as `python -m rbiqa.train` runs it)
with the paper's settings (experiment=paper: conf/train/paper.yaml) and a few size overrides, on a
synthetic model; benchmarks/kernel_probe.py records which kernels ran.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))

# The H200's dense bf16 peak: NVIDIA's datasheet value, which H200.md gives as "about 990" TFLOP/s (the
# H100 SXM's); and the bf16 matmul rate measured on such a machine here (KINDS.md: 8192^3 through
# PyTorch, random data, 769-798 TFLOP/s), the ceiling actually reachable.
H200_DENSE_BF16_PEAK = 989.5e12
H200_MEASURED_MATMUL = 788e12
VERSIONS = (
    "torch",
    "transformers",
    "peft",
    "trl",
    "accelerate",
    "datasets",
    "bitsandbytes",
    "liger-kernel",
    "flash-attn",
    "triton",
    "hydra-core",
    "omegaconf",
    "pydantic",
    "tokenizers",
    "huggingface-hub",
    "safetensors",
    "pyarrow",
    "fsspec",
    "numpy",
    "rbiqa",
)


def _dump(path: str | Path, obj: Any) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(obj, indent=2, default=str) + "\n")


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def versions() -> dict[str, str | None]:
    from importlib import metadata

    out = {}
    for d in VERSIONS:
        try:
            out[d] = metadata.version(d)
        except metadata.PackageNotFoundError:
            out[d] = None
    return out


# -- info ----------------------------------------------------------------------------------------------
def cmd_info(args) -> None:
    import torch

    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "versions": versions(),
    }
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info |= {
            "device_name": torch.cuda.get_device_name(0),
            "device_count": torch.cuda.device_count(),
            "capability": list(torch.cuda.get_device_capability(0)),
            "multiprocessors": p.multi_processor_count,
            "total_memory_bytes": p.total_memory,
            "bf16_supported": torch.cuda.is_bf16_supported(),
            "sdpa_backends_enabled": {
                "flash": torch.backends.cuda.flash_sdp_enabled(),
                "mem_efficient": torch.backends.cuda.mem_efficient_sdp_enabled(),
                "cudnn": torch.backends.cuda.cudnn_sdp_enabled(),
                "math": torch.backends.cuda.math_sdp_enabled(),
            },
        }
    else:
        info["device_name"] = "cpu"
    try:
        import bitsandbytes as bnb  # noqa: F401 - import only: which native library it loaded
        from bitsandbytes.cextension import lib

        info["bnb_native_library"] = getattr(lib, "_name", None) or str(lib)[:160]
    except Exception as e:  # recorded, not fatal: 4-bit is then unavailable
        info["bnb_native_library"] = f"import failed: {e!r}"[:300]
    _dump(args.out, info)
    print(json.dumps(info, indent=1, default=str))


# -- data ----------------------------------------------------------------------------------------------
def cmd_data(args) -> None:
    """train.jsonl (n_sources originals + their 3 shipped rephrasings), val_paraphrase.jsonl (the held-out
    rephrasing of some trained sources) and val.jsonl (unseen sources), from data/sample."""
    from rbiqa.io import read_jsonl, write_jsonl

    qa = read_jsonl(REPO / "data/sample/rbi_qa.jsonl")
    para = {r["id"]: r for r in read_jsonl(REPO / "data/sample/paraphrases.jsonl")}
    qa = [r for r in qa if r["id"] in para]
    n, nv = args.n_sources, args.n_val
    if n + nv > len(qa):
        raise SystemExit(f"need {n + nv} sources, data/sample has {len(qa)}")
    keep = ("regulation_area", "applicable_to", "category", "estimated_difficulty")
    train, val_para, val = [], [], []
    for r in qa[:n]:
        base = {k: r[k] for k in keep if k in r} | {"source_id": r["id"], "answer": r["answer"]}
        wordings = [r["question"], *para[r["id"]]["train"]]
        for v, q in enumerate(wordings):
            train.append(base | {"row_id": f"{r['id']}-v{v}", "variant_idx": v, "question": q})
        if len(val_para) < nv:
            val_para.append(
                base
                | {"row_id": f"{r['id']}:valpara", "variant_idx": 0, "question": para[r["id"]]["heldout"]}
            )
    for r in qa[n : n + nv]:
        val.append(
            {k: r[k] for k in keep if k in r}
            | {"row_id": r["id"], "source_id": r["id"], "variant_idx": 0}
            | {"question": r["question"], "answer": r["answer"]}
        )
    out = Path(args.out)
    for name, rows in (("train", train), ("val_paraphrase", val_para), ("val", val)):
        write_jsonl(out / f"{name}.jsonl", rows)
    print(
        f"data: {len(train)} train rows ({n} sources x 4 wordings), {len(val_para)} val_paraphrase, "
        f"{len(val)} val -> {out}"
    )


# -- build ---------------------------------------------------------------------------------------------
def cmd_build(args) -> None:
    from train_throughput import build_synthetic

    t0 = time.perf_counter()
    dest = build_synthetic(args.name, Path(args.dest), Path(args.tokenizer_dir))
    size = sum(f.stat().st_size for f in dest.glob("*.safetensors"))
    print(
        f"synthetic {args.name}: {size / 2**30:.2f} GiB of weights in {dest} ({time.perf_counter() - t0:.1f}s)"
    )


# -- train ---------------------------------------------------------------------------------------------
def cmd_train(args) -> None:
    import torch
    from kernel_probe import KernelProbe, summarize
    from train_throughput import dense_bf16_peak, flops_per_token

    from rbiqa.config import compose, setup_logging
    from rbiqa.train.run import Job, train_arm
    from rbiqa.train.settings import build_settings

    setup_logging("INFO")
    model_dir, data, work = Path(args.model_dir), Path(args.data), Path(args.work)
    cuda = torch.cuda.is_available()
    overrides = [
        "experiment=paper",
        f"arm={args.arm}",
        f"model.name={args.name or model_dir.name}",
        f"model.path={model_dir.as_posix()}",
        f"model.dtype={'bfloat16' if cuda else 'float32'}",
        f"train.max_steps={args.steps}",
        f"train.eval_steps={args.eval_steps}",
        "train.logging_steps=1",
        f"train.max_eval_rows={args.eval_rows}",
        *([f"train.per_device_train_batch_size={args.batch}"] if args.batch else []),
        *([f"train.gradient_accumulation_steps={args.accum}"] if args.accum else []),
        *args.override,
    ]
    print("overrides:", " ".join(overrides), flush=True)
    run = build_settings(compose(overrides))
    probe = KernelProbe(profile_step=args.profile_step if args.profile_step >= 0 else None)
    probe.install()
    job = Job(
        train_path=data / "train.jsonl",
        val_paths={"paraphrase": data / "val_paraphrase.jsonl", "unseen": data / "val.jsonl"},
        adapter_dir=work / "adapter",
        checkpoint_dir=work / "checkpoints",
        fingerprint="gpu_check",
        progress=False,
        extra_callbacks=[probe],
    )
    t0 = time.perf_counter()
    summary = train_arm(run, job)
    probe.loss_head = summary["runtime"]["loss_head"]
    log_rows = [r for r in _read_log(job.outputs["log"])]
    # steps after the first (allocator, Triton compilation) and the traced one; eval/checkpoint time is
    # never in tokens_per_s (rbiqa.train.trainer.LogRecorder)
    skip = {1, args.profile_step + 1}
    tps = [float(r["tokens_per_s"]) for r in log_rows if r.get("tokens_per_s") and int(r["step"]) not in skip]
    tok_s = statistics.median(tps) if tps else summary.get("mean_tokens_per_s")
    counts = summary["data"]
    tokens_per_row = counts["train_tokens_per_epoch"] / max(counts["train_rows"], 1)
    fl = flops_per_token(model_dir, tokens_per_row, run.train.lora.r)
    device_name = summary["device_name"]
    peak = dense_bf16_peak(device_name) if cuda else None
    kernels = probe.report()
    result = {
        "model": args.name or model_dir.name,
        "model_config": {
            k: v
            for k, v in json.loads((model_dir / "config.json").read_text()).items()
            if k
            in (
                "hidden_size",
                "intermediate_size",
                "num_hidden_layers",
                "num_attention_heads",
                "num_key_value_heads",
                "vocab_size",
                "tie_word_embeddings",
            )
        },
        "device": summary["device"],
        "device_name": device_name,
        "overrides": overrides,
        "runtime": summary["runtime"],
        "global_step": summary["global_step"],
        "first_train_loss": summary.get("first_train_loss"),
        "last_train_loss": summary.get("last_train_loss"),
        "best_eval_paraphrase_loss": summary.get("best_eval_paraphrase_loss"),
        "selection": summary.get("selection"),
        "effective_batch": run.train.effective_batch_size,
        "tokens_per_row": round(tokens_per_row, 1),
        "tokens_per_s": round(tok_s, 1) if tok_s else None,
        "tokens_per_s_steps": "median of per-step tokens/s, first and traced steps left out",
        "model_flop_per_token": fl["flop_per_token"],
        "peak_flops": peak,
        "mfu": round(tok_s * fl["flop_per_token"] / peak, 4) if peak and tok_s else None,
        "peak_cuda_allocated_bytes": summary.get("peak_cuda_allocated_bytes"),
        "peak_cuda_reserved_bytes": summary.get("peak_cuda_reserved_bytes"),
        "peak_rss_bytes": summary.get("peak_rss_bytes"),
        "train_wall_s": summary.get("train_wall_s"),
        "wall_s": round(time.perf_counter() - t0, 1),
        "adapter_sha256": summary.get("adapter_sha256"),
        "kernels_ran": summarize(kernels),
        "kernels": kernels,
        "trainer_log": log_rows,
    }
    _dump(args.out, result)
    print(
        json.dumps(
            {
                k: result[k]
                for k in (
                    "model",
                    "device_name",
                    "global_step",
                    "tokens_per_s",
                    "mfu",
                    "peak_cuda_allocated_bytes",
                    "kernels_ran",
                )
            },
            indent=1,
        )
    )


def _read_log(path: Path) -> list[dict[str, Any]]:
    import csv

    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if v != ""} for r in csv.DictReader(f)]


# -- summarize -----------------------------------------------------------------------------------------
def _steps(path: Path) -> list[dict[str, Any]]:
    out = []
    if path.exists():
        for line in path.read_text().splitlines():
            name, rc, secs, limit, status = line.split("\t")[:5]
            out.append(
                {"step": name, "rc": int(rc), "seconds": int(secs), "limit_s": int(limit), "status": status}
            )
    return out


def _leg_train(r: dict | None) -> dict | None:
    if not r:
        return None
    keep = (
        "model",
        "device_name",
        "global_step",
        "tokens_per_s",
        "mfu",
        "peak_cuda_allocated_bytes",
        "peak_cuda_reserved_bytes",
        "peak_rss_bytes",
        "first_train_loss",
        "last_train_loss",
        "effective_batch",
        "tokens_per_row",
        "model_flop_per_token",
        "train_wall_s",
        "runtime",
        "kernels_ran",
    )
    return {k: r.get(k) for k in keep}


def _leg_bench(r: dict | None) -> dict | None:
    if not r:
        return None

    def v(x: dict) -> dict:
        return {
            "useful_tokens_per_s": x.get("useful_tokens_per_s"),
            "peak_cuda_allocated_bytes": x.get("peak_cuda_allocated_bytes"),
            "peak_cuda_reserved_bytes": x.get("peak_cuda_reserved_bytes"),
            "peak_rss_bytes": x.get("peak_rss_bytes"),
            "mfu": x.get("mfu"),
            "pad_fraction": x.get("pad_fraction"),
            "s_per_step": x.get("s_per_step"),
            "timed_steps": x.get("timed_steps"),
            "loss_first_last": x.get("loss_first_last"),
            "kernels_ran": _kernels_ran(x.get("kernels")),
        }

    return {
        "model": r.get("model"),
        "device": r.get("device"),
        "settings": r.get("settings"),
        "naive": v(r["naive"]),
        "ours": v(r["ours"]),
        "ratio_tokens_per_s_ours_over_naive": r.get("ratio_useful_tokens_per_s"),
        "ratio_peak_memory_ours_over_naive": r.get("ratio_peak_memory"),
    }


def _kernels_ran(k: dict | None) -> dict | None:
    if not k:
        return None
    from kernel_probe import summarize

    try:
        return summarize(k)
    except (KeyError, TypeError) as e:
        return {"error": repr(e)}


def cmd_summarize(args) -> None:
    work, out = Path(args.work), Path(args.out)
    steps = _steps(work / "steps.tsv")
    info = _load(work / "info.json") or {}
    carried = _load(REPO / "benchmarks/gpu_carry/manifest.json")
    legs = {}
    for name in ("tiny", "qwen2_5_3b"):
        train = _load(work / f"train_{name}.json")
        bench = _load(work / f"throughput_{name}.json")
        if train or bench:
            legs[name] = {"train_stage": _leg_train(train), "throughput": _leg_bench(bench)}
    big = legs.get("qwen2_5_3b") or legs.get("tiny") or {}
    tb, tr = big.get("throughput") or {}, big.get("train_stage") or {}
    # a smoke rung may fail (the next one drops a kernel); every other step must pass, not be skipped
    failed = [s["step"] for s in steps if s["status"] != "ok" and not s["step"].startswith("smoke")]
    smoke = [s for s in steps if s["step"].startswith("smoke")]
    smoke_ok = not smoke or any(s["status"] == "ok" for s in smoke)
    report = {
        "ok": not failed and smoke_ok and bool(legs),
        "mode": args.mode,
        "device": {
            k: info.get(k)
            for k in (
                "device_name",
                "capability",
                "total_memory_bytes",
                "torch",
                "torch_cuda",
                "python",
                "bnb_native_library",
                "sdpa_backends_enabled",
            )
        },
        "versions": info.get("versions"),
        "peak": {
            "dense_bf16_flops": H200_DENSE_BF16_PEAK if "H200" in str(info.get("device_name")) else None,
            "source": "NVIDIA H200 SXM datasheet dense bf16 (H200.md: the H100 SXM's rate, about 990 TFLOP/s); "
            "MFU = useful tokens/s x model FLOPs per token / this peak",
            "measured_bf16_matmul_flops_kinds_md": H200_MEASURED_MATMUL,
        },
        "headline": {
            "model": tb.get("model") or tr.get("model"),
            "tokens_per_s_ours": (tb.get("ours") or {}).get("useful_tokens_per_s"),
            "tokens_per_s_naive": (tb.get("naive") or {}).get("useful_tokens_per_s"),
            "ratio_ours_over_naive": tb.get("ratio_tokens_per_s_ours_over_naive"),
            "peak_vram_ours_bytes": (tb.get("ours") or {}).get("peak_cuda_allocated_bytes"),
            "peak_vram_naive_bytes": (tb.get("naive") or {}).get("peak_cuda_allocated_bytes"),
            "mfu_ours": (tb.get("ours") or {}).get("mfu"),
            "mfu_naive": (tb.get("naive") or {}).get("mfu"),
            "train_stage_tokens_per_s": tr.get("tokens_per_s"),
            "train_stage_peak_vram_bytes": tr.get("peak_cuda_allocated_bytes"),
            "train_stage_mfu": tr.get("mfu"),
            "kernels_ran_train_stage": tr.get("kernels_ran"),
        },
        "legs": legs,
        "steps": steps,
        "failed_steps": failed,
        # extra train overrides of every leg: on GPU the smoke ladder's kernel fallback (none: every kernel
        # worked), on CPU the GPU path's choices that also run on CPU
        "overrides": (work / "overrides.txt").read_text().strip()
        if (work / "overrides.txt").exists()
        else None,
        "carried": carried,
        "install": (work / "install.txt").read_text().strip() if (work / "install.txt").exists() else None,
        "notes": [
            "peak VRAM is torch's allocator peak (max_memory_allocated; reserved beside it); bitsandbytes' paged "
            "optimizer state lives in CUDA managed memory, which that peak does not count (nvidia_smi.csv does)",
            "the synthetic models use the SmolLM2 tokenizer (ids < 49152) with Qwen2.5-3B's vocabulary size, so "
            "tokens per row differ a little from the real Qwen tokenizer's",
        ],
    }
    _dump(out, report)
    h = report["headline"]
    print("\n== gpu_check summary ==")
    for s in steps:
        print(f"  {s['step']:<24} {s['status']:<8} rc={s['rc']:<4} {s['seconds']:>4}s / {s['limit_s']}s")
    for k, v in h.items():
        print(f"  {k:<28} {v}")
    print(f"  ok: {report['ok']}   -> {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("info")
    p.add_argument("--out", required=True)
    p = sub.add_parser("data")
    p.add_argument("--out", required=True)
    p.add_argument("--n-sources", type=int, default=64)
    p.add_argument("--n-val", type=int, default=8)
    p = sub.add_parser("build")
    p.add_argument("--name", required=True)
    p.add_argument("--dest", required=True)
    p.add_argument("--tokenizer-dir", required=True)
    p = sub.add_parser("train")
    p.add_argument("--model-dir", required=True)
    p.add_argument("--name", default=None)
    p.add_argument("--data", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--arm", default="ft_k3")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--eval-steps", type=int, default=3)
    p.add_argument("--eval-rows", type=int, default=8)
    p.add_argument("--batch", type=int, default=None, help="default: the paper's (8)")
    p.add_argument("--accum", type=int, default=None, help="default: the paper's (4)")
    p.add_argument("--profile-step", type=int, default=1, help="optimizer step to trace (0-based); -1: none")
    p.add_argument("--override", action="append", default=[])
    p = sub.add_parser("summarize")
    p.add_argument("--work", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--mode", default="gpu")
    args = ap.parse_args()
    os.chdir(REPO)  # Hydra's conf/ and data/sample are relative to the repository root
    {"info": cmd_info, "data": cmd_data, "build": cmd_build, "train": cmd_train, "summarize": cmd_summarize}[
        args.cmd
    ](args)


if __name__ == "__main__":
    main()
