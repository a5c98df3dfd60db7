"""Training throughput and peak memory: a naive QLoRA setup vs the project's, on the same rows.

(a) naive: transformers.Trainer + PEFT on the 4-bit base, batches right-padded to their longest row, no
    packing, loss on the full sequence computed from the full logits.
(b) ours: rbiqa.train's TRL SFTTrainer: padding-free batches (no pad tokens at all), loss on the answer
    only, and on CUDA TRL's fused LM head (no full logits) and Liger kernels when installed (on CPU the
    model's own loss: train.fused_lm_head).

Both run the same LoRA/optimizer/precision settings and the same rows in the same seeded order. Each
variant runs in its own subprocess, so peak memory (RSS on CPU, allocator peak on CUDA) is its own.
"Useful" tokens are the non-pad tokens of a batch; the ratio (b)/(a) is of useful tokens per second.

    python benchmarks/train_throughput.py                        # CPU: SmolLM2-135M, a few steps
    python benchmarks/train_throughput.py --synthetic qwen2_5_3b  # GPU: random-init Qwen2.5-3B shape
    python benchmarks/train_throughput.py --synthetic qwen2_tiny  # the same code path on a tiny Qwen2

--synthetic builds a randomly initialised model from the Qwen2.5-3B config values (no download), saves
it once, and loads it 4-bit like the real one; throughput does not depend on the weights' values.
qwen2_tiny is the same architecture at tiny sizes (benchmarks/gpu_check.sh's CPU leg and GPU smoke test).
Each variant also records which kernels ran (benchmarks/kernel_probe.py; a traced warm-up step, never a
timed one) and, on a GPU whose bf16 dense peak is known (--peak-tflops), its MFU: model FLOPs per useful
token (benchmarks/train_cpu.py's count for LoRA over a frozen base, LM head at every position, the same
for both variants) x useful tokens/s / peak. --override passes Hydra overrides to both variants.
Writes benchmarks/results/train_throughput_<device>.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))

# Qwen2.5-3B-Instruct's config.json values (the architecture only; weights are random).
QWEN2_5_3B = {
    "hidden_size": 2048,
    "intermediate_size": 11008,
    "num_hidden_layers": 36,
    "num_attention_heads": 16,
    "num_key_value_heads": 2,
    "vocab_size": 151936,
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0,
    "tie_word_embeddings": True,
    "hidden_act": "silu",
    "bos_token_id": 151643,
    "eos_token_id": 151645,
}
# The same architecture (Qwen2: GQA, tied embeddings, head_dim 128) at tiny sizes; vocab_size covers the
# SmolLM2 tokenizer the benchmarks use (ids < 49152).
QWEN2_TINY = QWEN2_5_3B | {
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "vocab_size": 49152,
    "bos_token_id": 1,
    "eos_token_id": 2,
}
SYNTHETIC = {"qwen2_5_3b": QWEN2_5_3B, "qwen2_tiny": QWEN2_TINY}
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "special_tokens_map.json",
)
# Dense bf16 tensor-core peak (no sparsity) by device name, TFLOP/s: NVIDIA's datasheets (H200.md: the
# H200's rates are the H100 SXM's, "dense bf16 about 990").
DENSE_BF16_TFLOPS = {"H200": 989.5, "H100 PCIe": 756.0, "H100": 989.5}
ROW_SOURCES = ("data/processed/train.jsonl", "data/interim/split/train.jsonl", "data/sample/rbi_qa.jsonl")


def build_synthetic(name: str, dest: Path, tokenizer_dir: Path | None = None) -> Path:
    """A randomly initialised model of `name`'s config saved to dest (once: reused while its config
    matches), with the tokenizer files of tokenizer_dir beside it so the train stage can load both."""
    import shutil

    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    if name not in SYNTHETIC:
        raise SystemExit(f"unknown --synthetic {name!r}; known: {', '.join(SYNTHETIC)}")
    values = SYNTHETIC[name]
    # config.json does not keep every value where it was given (rope_theta moves into rope_parameters)
    marker = dest / "synthetic.json"
    same = (dest / "config.json").exists() and marker.exists() and json.loads(marker.read_text()) == values
    if not same:
        if dest.exists():
            shutil.rmtree(dest)
        cfg = Qwen2Config(**values, dtype="bfloat16")
        device = "cuda" if torch.cuda.is_available() else "cpu"
        torch.manual_seed(0)
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
        model.save_pretrained(dest, safe_serialization=True)
        del model
        marker.write_text(json.dumps(values))
    if tokenizer_dir is not None:
        for f in TOKENIZER_FILES:
            if (Path(tokenizer_dir) / f).exists():
                shutil.copy2(Path(tokenizer_dir) / f, dest / f)
    return dest


def dense_bf16_peak(device_name: str) -> float | None:
    """FLOP/s, from DENSE_BF16_TFLOPS by the first name the device's contains; None if unknown."""
    for key, tflops in DENSE_BF16_TFLOPS.items():
        if key in device_name:
            return tflops * 1e12
    return None


def flops_per_token(model_dir: Path, tokens_per_row: float, lora_r: int) -> dict:
    """Model FLOPs per trained token (benchmarks/train_cpu.py's count), LM head at every position."""
    from train_cpu import model_flops_per_token

    mcfg = json.loads((Path(model_dir) / "config.json").read_text())
    return model_flops_per_token(mcfg, tokens_per_row, lora_r, 1.0, "full")


def bench_rows(n: int) -> list[dict]:
    from rbiqa.io import read_jsonl

    for rel in ROW_SOURCES:
        p = REPO / rel
        if p.exists():
            rows = read_jsonl(p)
            break
    else:
        raise SystemExit(f"no QA rows found in any of {ROW_SOURCES}")
    rows = [r for r in rows if r.get("variant_idx", 0) == 0]
    return [
        {
            "row_id": str(r.get("row_id", r.get("id", i))),
            "source_id": str(r.get("source_id", i)),
            "variant_idx": 0,
            "question": r["question"],
            "answer": r["answer"],
        }
        for i, r in enumerate((rows * (n // len(rows) + 1))[:n])
    ]


class PadCounter:
    """Collator wrapper: non-pad vs computed tokens of every batch it builds (for the pad fraction)."""

    def __init__(self, inner):
        self.inner, self.useful, self.computed = inner, 0, 0

    def __call__(self, examples):
        batch = self.inner(examples)
        mask = batch.get("attention_mask")
        self.computed += int(batch["input_ids"].numel())
        self.useful += int(mask.sum()) if mask is not None else int(batch["input_ids"].numel())
        return batch


def make_timer(warmup: int):
    from transformers import TrainerCallback

    class Timer(TrainerCallback):
        """Times the steps after `warmup` (allocator and kernel warm-up excluded) and counts their tokens
        from the Trainer's own per-step count (`include_num_input_tokens_seen`)."""

        def __init__(self):
            self.t0 = self.tokens0 = None
            self.losses: list[float] = []

        def on_step_begin(self, args, state, control, **kw):
            # runs before this step's tokens are counted
            if state.global_step == warmup and self.t0 is None:
                _sync()
                self.t0, self.tokens0 = time.perf_counter(), state.num_input_tokens_seen
                self.cpu0 = time.process_time()

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                self.losses.append(float(logs["loss"]))

        def on_train_end(self, args, state, control, **kw):
            _sync()
            self.elapsed = time.perf_counter() - self.t0
            self.cpu = time.process_time() - self.cpu0
            self.steps = state.global_step - warmup
            self.tokens = state.num_input_tokens_seen - self.tokens0

    return Timer()


def _sync():
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def worker(variant: str, args) -> dict:
    import resource

    import torch
    from datasets import Dataset
    from kernel_probe import KernelProbe
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    from rbiqa.config import compose
    from rbiqa.models import load_tokenizer
    from rbiqa.train.data import TrainRow, to_prompt_completion, tokenize
    from rbiqa.train.model import adapter_dtype, cast_trainable, load_base, lora_config, resolve_runtime
    from rbiqa.train.settings import build_settings
    from rbiqa.train.trainer import build_trainer

    model_dir = Path(args.model_dir)
    overrides = [
        f"experiment={args.experiment}",
        "arm=ft_k0",
        f"model.path={model_dir.as_posix()}",
        f"model.dtype={args.dtype}",
        f"train.max_steps={args.steps}",
        f"train.per_device_train_batch_size={args.batch}",
        "train.gradient_accumulation_steps=1",
        f"train.max_seq_len={args.max_seq_len}",
        "train.eval_steps=1000000",
        "train.logging_steps=1",
        "train.early_stopping_patience=0",
        "train.selection=final",
        "train.warmup_ratio=0.0",
        *args.override,
    ]
    if args.threads:
        overrides.append(f"train.threads={args.threads}")
        torch.set_num_threads(args.threads)
    run = build_settings(compose(overrides))
    t = run.train
    rt = resolve_runtime(t)
    if rt.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    tok = load_tokenizer(args.tokenizer_dir, padding_side="right")
    rows = [TrainRow.model_validate(r) for r in bench_rows(args.rows)]
    pairs = to_prompt_completion(rows, tok, run.system_prompt)
    tokenized, _ = tokenize(pairs, tok, t.max_seq_len)
    model = load_base(model_dir, run.model_dtype, t, rt)
    out_dir = Path(tempfile.mkdtemp(prefix=f"bench_{variant}_"))
    # kernels: counters from the start, a trace of the last warm-up step (never of a timed one)
    probe = KernelProbe(
        profile_step=args.warmup - 1 if args.warmup >= 2 and args.profile else None,
        loss_head=rt.loss_head if variant == "ours" else "full (naive: the model's own loss)",
    ).install()
    if variant == "ours":
        ds = Dataset.from_list(tokenized)
        evals = {"paraphrase": ds.select(range(2))}
        trainer, _ = build_trainer(run, rt, model, tok, ds, evals, out_dir, progress=False)
        # padding-free batches hold no pad token, so every input token is useful
        trainer.args.include_num_input_tokens_seen = "all"
    else:
        from peft import get_peft_model

        ds = Dataset.from_list([{"input_ids": r["input_ids"]} for r in tokenized])
        model = get_peft_model(model, lora_config(t))
        cast_trainable(model, adapter_dtype(rt))
        targs = TrainingArguments(
            output_dir=str(out_dir),
            seed=run.train_seed,
            data_seed=run.train_seed,
            use_cpu=rt.device == "cpu",
            bf16=rt.mixed_precision == "bf16",
            fp16=rt.mixed_precision == "fp16",
            optim=rt.optim,
            learning_rate=t.learning_rate,
            lr_scheduler_type=t.lr_scheduler_type,
            weight_decay=t.weight_decay,
            max_steps=args.steps,
            per_device_train_batch_size=args.batch,
            gradient_checkpointing=rt.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False} if rt.gradient_checkpointing else None,
            logging_steps=1,
            save_strategy="no",
            eval_strategy="no",
            report_to="none",
            disable_tqdm=True,
            dataloader_num_workers=0,
            include_num_input_tokens_seen="non_padding",
        )
        # mlm=False: labels = input_ids with pad positions -100, i.e. loss on the whole sequence
        collator = DataCollatorForLanguageModeling(tok, mlm=False)
        trainer = Trainer(model=model, args=targs, train_dataset=ds, data_collator=collator)
    counter = PadCounter(trainer.data_collator)
    trainer.data_collator = counter
    timer = make_timer(args.warmup)
    trainer.add_callback(timer)
    trainer.add_callback(probe)
    trainer.train()
    tokens_per_row = sum(len(r["input_ids"]) for r in tokenized) / len(tokenized)
    out = {
        "variant": variant,
        "runtime": rt.as_dict(),
        "timed_steps": timer.steps,
        "seconds": round(timer.elapsed, 3),
        "useful_tokens": timer.tokens,
        "pad_fraction": round(1 - counter.useful / counter.computed, 4),  # over every batch built
        "useful_tokens_per_s": round(timer.tokens / timer.elapsed, 2),
        # CPU seconds of this process (all threads): on a shared box, far less sensitive to other load
        "cpu_s": round(timer.cpu, 2),
        "useful_tokens_per_cpu_s": round(timer.tokens / timer.cpu, 3),
        "s_per_step": round(timer.elapsed / max(timer.steps, 1), 3),
        "loss_first_last": [timer.losses[0], timer.losses[-1]] if timer.losses else None,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }
    if rt.device == "cuda":
        out["peak_cuda_allocated_bytes"] = int(torch.cuda.max_memory_allocated())
        out["peak_cuda_reserved_bytes"] = int(torch.cuda.max_memory_reserved())
        out["device_name"] = torch.cuda.get_device_name(0)
    fl = flops_per_token(model_dir, tokens_per_row, t.lora.r)
    out["tokens_per_row"] = round(tokens_per_row, 1)
    out["model_flop_per_token"] = fl["flop_per_token"]
    peak = args.peak_tflops * 1e12 if args.peak_tflops else None
    if peak is None and rt.device == "cuda":
        peak = dense_bf16_peak(out["device_name"])
    out["mfu"] = round(out["useful_tokens_per_s"] * fl["flop_per_token"] / peak, 4) if peak else None
    out["peak_flops"] = peak
    out["kernels"] = probe.report()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--synthetic",
        choices=sorted(SYNTHETIC),
        help="random-init model of this config (no download): qwen2_5_3b, or qwen2_tiny (same code path)",
    )
    ap.add_argument(
        "--synthetic-dir",
        default=None,
        help="where the synthetic model is saved (default data/cache/synthetic/<name>)",
    )
    ap.add_argument("--model-dir", default=str(REPO / "data/models/smollm2_135m"))
    ap.add_argument(
        "--tokenizer-dir",
        default=str(REPO / "data/models/smollm2_135m"),
        help="tokenizer for the rows (SmolLM2's also serves the synthetic model: ids < its vocab)",
    )
    ap.add_argument(
        "--experiment", default=None, help="Hydra experiment for the train settings (default: by device)"
    )
    ap.add_argument(
        "--steps", type=int, default=None, help="optimizer steps per variant (default: 4 CPU, 30 GPU)"
    )
    ap.add_argument("--warmup", type=int, default=None, help="untimed first steps (default: 1 CPU, 5 GPU)")
    ap.add_argument("--batch", type=int, default=None, help="rows per step (default: 4 CPU, 8 GPU)")
    ap.add_argument("--rows", type=int, default=512)
    ap.add_argument("--max-seq-len", type=int, default=None)
    ap.add_argument(
        "--dtype",
        default=None,
        help="dtype of the non-quantized weights (default: float32 CPU, bfloat16 GPU)",
    )
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument(
        "--override",
        action="append",
        default=[],
        help="Hydra override for both variants' train settings (repeatable), e.g. train.use_liger_kernel=never",
    )
    ap.add_argument(
        "--peak-tflops",
        type=float,
        default=None,
        help="dense bf16 peak for MFU (default: by GPU name, DENSE_BF16_TFLOPS; none on CPU)",
    )
    ap.add_argument(
        "--no-profile",
        dest="profile",
        action="store_false",
        help="no torch.profiler trace of the last warm-up step (kernel counters and inspection stay)",
    )
    ap.add_argument("--out", default=None)
    ap.add_argument("--_worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--_result", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.chdir(REPO)  # Hydra conf/ and data paths are relative to the repository root

    import torch

    gpu = torch.cuda.is_available()
    for key, cpu_v, gpu_v in [
        ("experiment", "default", "paper"),
        ("steps", 4, 30),
        ("warmup", 1, 5),
        ("batch", 4, 8),
        ("max_seq_len", 256, 1024),
        ("dtype", "float32", "bfloat16"),
        ("threads", 2, None),
    ]:
        if getattr(args, key) is None:
            setattr(args, key, gpu_v if gpu else cpu_v)
    if args._worker:
        Path(args._result).write_text(json.dumps(worker(args._worker, args)))
        return

    if args.synthetic:
        dest = Path(args.synthetic_dir or REPO / "data/cache/synthetic" / args.synthetic)
        args.model_dir = str(build_synthetic(args.synthetic, dest))
    device = torch.cuda.get_device_name(0).replace(" ", "_") if gpu else "cpu"
    results = {}
    for variant in ("naive", "ours"):
        with tempfile.NamedTemporaryFile(suffix=".json") as f:
            cmd = [sys.executable, __file__, "--_worker", variant, "--_result", f.name]
            for key in (
                "model_dir",
                "tokenizer_dir",
                "experiment",
                "steps",
                "warmup",
                "batch",
                "rows",
                "max_seq_len",
                "dtype",
                "threads",
                "peak_tflops",
            ):
                if getattr(args, key) is not None:
                    cmd += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
            cmd += [f"--override={o}" for o in args.override]
            if not args.profile:
                cmd.append("--no-profile")
            print(f"[{variant}] {' '.join(cmd)}", flush=True)
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True)
            results[variant] = json.loads(Path(f.name).read_text()) | {
                "wall_s": round(time.perf_counter() - t0, 1)
            }
            shown = {k: v for k, v in results[variant].items() if k != "kernels"}
            print(json.dumps(shown, indent=1), flush=True)
            if results[variant].get("kernels"):
                from kernel_probe import summarize

                print("kernels ran:", json.dumps(summarize(results[variant]["kernels"])), flush=True)
    a, b = results["naive"], results["ours"]
    report = {
        "device": device,
        "model": args.synthetic or Path(args.model_dir).name,
        "settings": {
            k: getattr(args, k)
            for k in (
                "experiment",
                "steps",
                "warmup",
                "batch",
                "rows",
                "max_seq_len",
                "dtype",
                "threads",
                "override",
            )
        },
        "naive": a,
        "ours": b,
        "ratio_useful_tokens_per_s": round(b["useful_tokens_per_s"] / a["useful_tokens_per_s"], 3),
        "ratio_useful_tokens_per_cpu_s": round(
            b["useful_tokens_per_cpu_s"] / a["useful_tokens_per_cpu_s"], 3
        ),
        "ratio_peak_memory": round(
            b.get("peak_cuda_allocated_bytes", b["peak_rss_bytes"])
            / a.get("peak_cuda_allocated_bytes", a["peak_rss_bytes"]),
            3,
        ),
        "peak_flops": b.get("peak_flops"),
        "mfu": {"naive": a.get("mfu"), "ours": b.get("mfu")},
    }
    out = Path(args.out or REPO / "benchmarks" / "results" / f"train_throughput_{device}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"ratio ours/naive useful tokens/s: {report['ratio_useful_tokens_per_s']}  -> {out}")


if __name__ == "__main__":
    main()
