"""CPU training throughput of the default recipe, variant by variant, against the hardware limit.

1. The limit. LoRA over a frozen base costs, per token: the forward matmuls (2 FLOP per weight), the
   backward matmuls for the activation gradients only (another 2 per weight; a frozen weight needs no
   gradient), the adapters (6 per adapter weight) and attention. The rate those matmuls can reach is
   measured here with float32 GEMMs at the model's own shapes, on 1 and 2 threads, and the limit in
   tokens/s is that rate divided by the FLOPs per token.
2. The variants. Each runs the real training code (rbiqa.train: TRL SFTTrainer + PEFT, the default's
   config with a few overrides) on the same rows, in its own process (so peak RSS is its own), for a few
   optimizer steps after an untimed warm-up. Tokens are counted from the batches the collator built:
   prompt + completion, no padding.

    python benchmarks/train_cpu.py                      # every variant -> benchmarks/results/train_cpu.json
    python benchmarks/train_cpu.py --only best_compiled # some variants, merged into that file
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))

# name: (Hydra overrides over experiment=default arm=ft_k3, torch threads, what it tests)
# The previous default, then one change at a time, then the chosen recipe without each of its parts.
PREVIOUS = [
    "train.cpu_weights=4bit",
    "train.loss_head.cpu=full",
    "train.lora.dropout=0.1",
    "train.padding_free.cpu=true",
    "train.per_device_train_batch_size=2",
]
BEST = [
    "train.cpu_weights=roundtrip",
    "train.loss_head.cpu=completion",
    "train.lora.dropout=0.0",
    "train.padding_free.cpu=false",
    "train.per_device_train_batch_size=4",
]


def _with(base: list[str], *changes: str) -> list[str]:
    keys = {c.split("=")[0] for c in changes}
    return [o for o in base if o.split("=")[0] not in keys] + list(changes)


# name: (Hydra overrides over experiment=default arm=ft_k3, torch threads, what it tests)
VARIANTS: dict[str, tuple[list[str], int, str]] = {
    "previous_default": (
        PREVIOUS,
        2,
        "NF4 storage, full-vocabulary logits, dropout 0.1, padding-free, 2 rows",
    ),
    "roundtrip": (_with(PREVIOUS, "train.cpu_weights=roundtrip"), 2, "NF4 values held in float32"),
    "completion_head": (
        _with(PREVIOUS, "train.cpu_weights=roundtrip", "train.loss_head.cpu=completion"),
        2,
        "+ LM head only at the answer positions",
    ),
    "no_dropout": (
        _with(
            PREVIOUS,
            "train.cpu_weights=roundtrip",
            "train.loss_head.cpu=completion",
            "train.lora.dropout=0.0",
        ),
        2,
        "+ LoRA dropout 0 (bernoulli masks on every adapter input cost ~15% of a step)",
    ),
    "best": (
        BEST,
        2,
        "+ padded rows grouped by length, 4 rows a step (attention per row, not over a flat row)",
    ),
    "best_b8": (_with(BEST, "train.per_device_train_batch_size=8"), 2, "the same with 8 rows a step"),
    "best_nf4": (
        _with(BEST, "train.cpu_weights=4bit"),
        2,
        "the recipe on NF4 storage: the cost of dequantising",
    ),
    "best_fused_head": (
        _with(BEST, "train.loss_head.cpu=fused"),
        2,
        "the recipe with TRL's fused chunked head",
    ),
    "best_padding_free": (
        _with(BEST, "train.padding_free.cpu=true"),
        2,
        "the recipe with padding-free batches",
    ),
    "best_1thread": (BEST, 1, "the recipe on one thread: what each of two arms training side by side gets"),
    "best_compiled": (
        _with(BEST, "train.torch_compile=true"),
        2,
        "the recipe under torch.compile (compilation in the warm-up steps, not timed)",
    ),
}


def model_flops_per_token(cfg: dict, seq_len: float, lora_r: int, completion_share: float, head: str) -> dict:
    """FLOPs per training token of LoRA over a frozen base (multiply-add = 2 FLOP)."""
    h, i, n_layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    kv = cfg["num_key_value_heads"] * (h // cfg["num_attention_heads"])
    shapes = [(h, h), (h, kv), (h, kv), (h, h), (h, i), (h, i), (i, h)]  # q k v o gate up down
    linear = n_layers * sum(a * b for a, b in shapes)
    lora = n_layers * sum(lora_r * (a + b) for a, b in shapes)
    head_w = h * cfg["vocab_size"]
    head_share = completion_share if head == "completion" else 1.0
    attn = n_layers * 2 * 2 * seq_len * h  # QK^T and AV per token (causal: half of a full square, x2 for fwd)
    fwd = 2 * linear + 2 * head_w * head_share + 2 * lora + attn
    bwd = 2 * linear + 2 * head_w * head_share + 4 * lora + 2 * attn  # activation grads; adapter weight grads
    return {
        "frozen_linear_params": linear,
        "lm_head_params": head_w,
        "lora_params": lora,
        "forward_flop": fwd,
        "backward_flop": bwd,
        "flop_per_token": fwd + bwd,
    }


def gemm_rate(threads: int, tokens: int, shapes: list[tuple[int, int]], repeat: int = 20) -> dict:
    """Best-of-`repeat` float32 GEMM rate [tokens x k] @ [k x n] for each shape, and the FLOP-weighted mean."""
    import torch

    torch.set_num_threads(threads)
    per, total_flop, total_s = {}, 0.0, 0.0
    for k, n in shapes:
        a, b = torch.randn(tokens, k), torch.randn(k, n)
        for _ in range(3):
            a @ b
        best = min(_timed(lambda a=a, b=b: a @ b) for _ in range(repeat))
        flop = 2 * tokens * k * n
        per[f"{tokens}x{k}x{n}"] = round(flop / best / 1e9, 1)
        total_flop, total_s = total_flop + flop, total_s + best
    return {
        "threads": threads,
        "gflops_by_shape": per,
        "gflops_weighted": round(total_flop / total_s / 1e9, 1),
    }


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def cpu_info() -> dict:
    info = {"processor": platform.processor(), "cores": os.cpu_count()}
    try:
        text = Path("/proc/cpuinfo").read_text()
        info["model_name"] = next(
            line.split(":", 1)[1].strip() for line in text.splitlines() if "model name" in line
        )
        flags = next(line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags"))
        info["avx2"], info["fma"], info["avx512f"] = "avx2" in flags, "fma" in flags, "avx512f" in flags
        mhz = [float(line.split(":")[1]) for line in text.splitlines() if line.startswith("cpu MHz")]
        info["mhz"] = max(mhz) if mhz else None
    except (OSError, StopIteration):
        pass
    return info


def worker(name: str, args) -> dict:
    import torch
    from datasets import Dataset
    from train_throughput import bench_rows
    from transformers import TrainerCallback

    from rbiqa.config import compose
    from rbiqa.models import load_tokenizer
    from rbiqa.train.data import TrainRow, to_prompt_completion, tokenize
    from rbiqa.train.model import load_base, resolve_runtime
    from rbiqa.train.settings import build_settings
    from rbiqa.train.trainer import build_trainer

    overrides, threads, _ = VARIANTS[name]
    torch.set_num_threads(threads)
    cfg = compose(
        [
            "experiment=default",
            "arm=ft_k3",
            f"train.threads={threads}",
            f"train.max_steps={args.steps}",
            "train.eval_steps=1000000",
            "train.logging_steps=1",
            "train.early_stopping_patience=0",
            "train.selection=final",
            "train.warmup_ratio=0.0",
            *overrides,
        ]
    )
    run = build_settings(cfg)
    t = run.train
    rt = resolve_runtime(t)
    tok = load_tokenizer(run.model_path, padding_side="right")
    rows = [TrainRow.model_validate(r) for r in bench_rows(args.rows)]
    tokenized, _ = tokenize(to_prompt_completion(rows, tok, run.system_prompt), tok, t.max_seq_len)
    ds = Dataset.from_list(tokenized)
    model = load_base(run.model_path, run.model_dtype, t, rt)
    out_dir = Path(tempfile.mkdtemp(prefix=f"bench_{name}_"))
    evals = {"paraphrase": ds.select(range(2))}
    trainer, _ = build_trainer(run, rt, model, tok, ds, evals, out_dir, progress=False)

    tokens: list[int] = []
    inner = trainer.data_collator

    def counting(examples):
        batch = inner(examples)
        mask = batch.get("attention_mask")
        tokens.append(int(mask.sum()) if mask is not None else int(batch["input_ids"].numel()))
        return batch

    trainer.data_collator = counting

    class Timer(TrainerCallback):
        t0 = cpu0 = None

        def on_step_begin(self, a, state, control, **kw):
            if state.global_step == args.warmup and self.t0 is None:
                self.t0, self.cpu0 = time.perf_counter(), time.process_time()

        def on_train_end(self, a, state, control, **kw):
            self.seconds, self.cpu = time.perf_counter() - self.t0, time.process_time() - self.cpu0

    timer = Timer()
    trainer.add_callback(timer)
    trainer.train()
    timed = sum(tokens[args.warmup : args.steps])
    return {
        "variant": name,
        "what": VARIANTS[name][2],
        "overrides": overrides,
        "threads": threads,
        "runtime": rt.as_dict(),
        "batch_rows": t.per_device_train_batch_size,
        "timed_steps": args.steps - args.warmup,
        "timed_tokens": timed,
        "seconds": round(timer.seconds, 2),
        "tokens_per_s": round(timed / timer.seconds, 1),
        "tokens_per_s_per_thread": round(timed / timer.seconds / threads, 1),
        "cpu_s": round(timer.cpu, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def row_shape(rows: int) -> dict:
    """Tokens per training row, and the share spent on the system prompt and chat template."""
    from train_throughput import bench_rows

    from rbiqa.config import compose
    from rbiqa.models import load_tokenizer
    from rbiqa.train.data import TrainRow, to_prompt_completion, tokenize
    from rbiqa.train.settings import build_settings

    run = build_settings(compose(["experiment=default", "arm=ft_k3"]))
    tok = load_tokenizer(run.model_path, padding_side="right")
    data = [TrainRow.model_validate(r) for r in bench_rows(rows)]
    full, _ = tokenize(to_prompt_completion(data, tok, run.system_prompt), tok, run.train.max_seq_len)
    bare, _ = tokenize(to_prompt_completion(data, tok, None), tok, run.train.max_seq_len)
    n = sum(len(r["input_ids"]) for r in full)
    completion = sum(sum(r["completion_mask"]) for r in full)
    system = n - sum(len(r["input_ids"]) for r in bare)
    question = sum(len(tok(r.question, add_special_tokens=False)["input_ids"]) for r in data)
    return {
        "rows": len(full),
        "tokens_per_row": round(n / len(full), 1),
        "share_completion": round(completion / n, 3),
        "share_system_prompt": round(system / n, 3),
        "share_question": round(question / n, 3),
        "share_template_other": round(1 - (completion + system + question) / n, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--steps", type=int, default=8, help="optimizer steps per variant (the first are warm-up)"
    )
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--rows", type=int, default=128)
    ap.add_argument("--only", nargs="*", help="run only these variants (merged into an existing --out)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "train_cpu.json"))
    ap.add_argument("--_worker", help=argparse.SUPPRESS)
    ap.add_argument("--_result", help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.chdir(REPO)
    if args._worker:
        Path(args._result).write_text(json.dumps(worker(args._worker, args)))
        return

    from transformers import AutoConfig

    from rbiqa.config import compose

    cfg = compose(["experiment=default", "arm=ft_k3"])
    mcfg = AutoConfig.from_pretrained(cfg.model.path).to_dict()
    shape = row_shape(args.rows)
    names = args.only or list(VARIANTS)
    out = Path(args.out)
    results = json.loads(out.read_text())["variants"] if args.only and out.exists() else {}
    for name in names:
        with tempfile.NamedTemporaryFile(suffix=".json") as f:
            cmd = [sys.executable, __file__, "--_worker", name, "--_result", f.name]
            cmd += ["--steps", str(args.steps), "--warmup", str(args.warmup), "--rows", str(args.rows)]
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True)
            results[name] = json.loads(Path(f.name).read_text()) | {
                "wall_s": round(time.perf_counter() - t0, 1)
            }
        r = results[name]
        print(
            f"{name:28s} {r['tokens_per_s']:7.1f} tok/s  {r['peak_rss_mb']:6d} MB  ({r['what']})", flush=True
        )

    step_tokens = int(shape["tokens_per_row"] * 4)
    h, i = mcfg["hidden_size"], mcfg["intermediate_size"]
    shapes = [(h, h), (h, i), (i, h)]
    limits = [gemm_rate(th, step_tokens, shapes) for th in (1, 2)]
    flops = {
        head: model_flops_per_token(
            mcfg, shape["tokens_per_row"], int(cfg.train.lora.r), shape["share_completion"], head
        )
        for head in ("full", "completion")
    }
    best = results.get("best") or max(
        results.values(), key=lambda r: r["tokens_per_s"] if r["threads"] == 2 else 0
    )
    head = best["runtime"]["loss_head"] if best["runtime"]["loss_head"] in flops else "full"
    for lim in limits:
        lim["tokens_per_s_limit"] = round(lim["gflops_weighted"] * 1e9 / flops[head]["flop_per_token"], 1)
    report = {
        "cpu": cpu_info(),
        "torch": __import__("torch").__version__,
        "model": cfg.model.name,
        "rows": shape,
        "flops_per_token": flops,
        "matmul_limit": limits,
        "variants": results,
        "best_2_threads": {
            "variant": best["variant"],
            "tokens_per_s": best["tokens_per_s"],
            "share_of_limit": round(best["tokens_per_s"] / limits[1]["tokens_per_s_limit"], 3),
        },
    }
    print(json.dumps({k: report[k] for k in ("rows", "matmul_limit", "best_2_threads")}, indent=1))
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
