"""CPU cost of answer generation: model.generate against prefix-cached greedy decoding, and batch size.

Records CPU seconds per answer on the converted SmolLM2 (run `python -m rbiqa.fetch_model` and the clean
stage first), single-threaded as the pipeline's generate jobs run, to benchmarks/results/generate_decoding.json.
    python benchmarks/generate_decoding.py [--n 64]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from rbiqa import paths as P
from rbiqa.models import chat_generate, load_causal_lm, load_tokenizer
from rbiqa.prefix_decoding import PrefixGroupedGreedy

OUT = Path("benchmarks/results/generate_decoding.json")


def cpu(fn):
    c0 = time.process_time()
    out = fn()
    return time.process_time() - c0, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=64, help="answers per measurement")
    args = ap.parse_args()
    torch.set_num_threads(1)
    g = OmegaConf.load("conf/generate/default.yaml")
    model_dir = P.model_dir("smollm2_135m")
    model, tok = load_causal_lm(model_dir), load_tokenizer(model_dir, padding_side="left")
    questions = [
        json.loads(line)["question"]
        for s in ("test_unseen", "unanswerable")
        for line in P.eval_set_path(s).read_text().splitlines()
    ][: args.n]
    convs = [
        [{"role": "system", "content": g.system_prompt}, {"role": "user", "content": q}] for q in questions
    ]
    n_tok = int(g.max_new_tokens)
    res: dict = {"n_answers": len(convs), "max_new_tokens": n_tok, "threads": 1}

    s_hf, hf = cpu(
        lambda: chat_generate(model, tok, convs, max_new_tokens=n_tok, batch_size=32, progress=False)
    )
    s_px, px = cpu(
        lambda: (
            PrefixGroupedGreedy(model, tok, n_tok)(convs[:32])
            + PrefixGroupedGreedy(model, tok, n_tok)(convs[32:])
        )
    )
    res["batch_32"] = {
        "model_generate_cpu_s_per_answer": round(s_hf / len(convs), 3),
        "prefix_cached_cpu_s_per_answer": round(s_px / len(convs), 3),
        "same_text": sum(a["text"] == b["text"] for a, b in zip(hf, px, strict=True)),
    }
    res["prefix_cached_by_batch_size"] = {}
    for bs in (16, 32, 64):
        dec = PrefixGroupedGreedy(model, tok, n_tok)
        s, _ = cpu(
            lambda dec=dec, bs=bs: [r for i in range(0, len(convs), bs) for r in dec(convs[i : i + bs])]
        )
        res["prefix_cached_by_batch_size"][bs] = round(s / len(convs), 3)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
