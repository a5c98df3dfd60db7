"""Reference-judge throughput (items/s) on this box, cold and on a warm embedding cache, against its limit.

The reference judge spends its time in two places: MiniLM forward passes (sentence vectors of the
question, reference, answer and each of their sentences, plus contextual token vectors of the reference
and answer for the token alignment) and the lexical, numeric and logistic-regression features. This
records, for the same items:
- `cold`: a fresh process-level embedding memo, as the first judge job of a run sees it;
- `warm`: every text already embedded (a rerun after a classifier change, or a second arm that shares
  the references), so only features and the classifier run;
- a profile of the cold run by phase, and the MiniLM FLOPs it performed against the float32 GEMM rate
  this box reaches at MiniLM's shapes (the hardware limit of the cold path).

    python benchmarks/judge_throughput.py [--n 256] [--threads 2]

Items are the labelled calibration answers when ../shared is present (real reference-study answers of
realistic length), else the sample corpus' eval questions answered by their own references.
Writes benchmarks/results/judge_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from rbiqa.judge.protocol import JudgeTask  # noqa: E402
from rbiqa.judge.reference.embeddings import MAX_SEQ_LEN, Embedder  # noqa: E402
from rbiqa.judge.reference.features import Triple  # noqa: E402
from rbiqa.judge.reference.model import ReferenceJudge  # noqa: E402
from rbiqa.judge.reference.text_features import split_sentences  # noqa: E402

OUT = REPO / "benchmarks/results/judge_throughput.json"
CALIBRATION = REPO.parent / "shared/calibration/seed_judgments_dev.csv"
TARGET_ITEMS_PER_S = 20.0  # issue 13: reference judge on a warm embedding cache


def load_items(n: int) -> tuple[list[Triple], str]:
    if CALIBRATION.is_file():
        from rbiqa.judge.reference.calibration_data import load_calibration_csv

        df = load_calibration_csv(CALIBRATION).head(n)
        rows = [Triple(r.question, r.ground_truth, r.generated_answer) for r in df.itertuples(index=False)]
        return rows, f"{CALIBRATION.name} (first {len(rows)} rows)"
    sample = REPO / "data/sample/rbi_qa.jsonl"
    rows = []
    for line in sample.read_text(encoding="utf-8").splitlines()[:n]:
        r = json.loads(line)
        rows.append(Triple(r["question"], r["answer"], r["answer"]))
    return rows, f"{sample.name} (first {len(rows)} rows, answer = reference)"


def tasks_of(items: list[Triple]) -> list[JudgeTask]:
    return [
        JudgeTask(
            item_id=f"i{i}", kind="reference", question=t.question, reference=t.reference, answer=t.answer
        )
        for i, t in enumerate(items)
    ]


def judge_seconds(judge: ReferenceJudge, tasks: list[JudgeTask]) -> float:
    done: list = []
    t0 = time.perf_counter()
    judge.judge(tasks, lambda task, outcome: done.append(outcome))
    elapsed = time.perf_counter() - t0
    assert len(done) == len(tasks) and all(o.score in (0, 1) for o in done), "every item must get a verdict"
    return elapsed


def minilm_flops(embedder: Embedder, items: list[Triple]) -> tuple[float, int]:
    """FLOPs of the MiniLM forward passes one cold judging makes (2 per weight per token, plus attention)."""
    cfg = embedder.model.config
    n_params = sum(p.numel() for p in embedder.model.parameters() if p.dim() == 2)
    n_params -= cfg.vocab_size * cfg.hidden_size  # the embedding lookup is not a matmul
    texts: set[str] = set()
    for t in items:
        texts |= {
            t.question,
            t.reference,
            t.answer,
            *split_sentences(t.reference),
            *split_sentences(t.answer),
        }
    aligned = {t.reference for t in items} | {t.answer for t in items}  # token states: a second pass
    lens = [len(embedder.tokenizer(x, truncation=True, max_length=MAX_SEQ_LEN)["input_ids"]) for x in texts]
    lens += [
        len(embedder.tokenizer(x, truncation=True, max_length=MAX_SEQ_LEN)["input_ids"]) for x in aligned
    ]
    flops = sum(2 * n_params * n + 4 * cfg.num_hidden_layers * n * n * cfg.hidden_size for n in lens)
    return float(flops), int(sum(lens))


def gemm_gflops(hidden: int, inter: int, tokens: int = 2048, reps: int = 20) -> float:
    """float32 GEMM rate at MiniLM's shapes (tokens x hidden x {hidden, intermediate})."""
    x = torch.randn(tokens, hidden)
    ws = [torch.randn(hidden, hidden), torch.randn(hidden, inter), torch.randn(inter, hidden)]
    with torch.inference_mode():
        for w in ws:  # warm-up
            (x if w.shape[0] == hidden else torch.randn(tokens, inter)) @ w
        xi = torch.randn(tokens, inter)
        t0 = time.perf_counter()
        for _ in range(reps):
            x @ ws[0]
            x @ ws[1]
            xi @ ws[2]
        dt = time.perf_counter() - t0
    flop = reps * 2 * tokens * (hidden * hidden + 2 * hidden * inter)
    return flop / dt / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256, help="items judged per measurement")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (the box has 2 cores)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    items, source = load_items(args.n)
    tasks = tasks_of(items)

    embedder = Embedder()
    cfg = embedder.model.config
    rate = max(gemm_gflops(cfg.hidden_size, cfg.intermediate_size) for _ in range(3))  # before any load
    judge = ReferenceJudge(embedder=embedder)
    phases: dict[str, float] = {}
    t0 = time.perf_counter()
    embedder.encode(
        [
            x
            for t in items
            for x in (
                t.question,
                t.reference,
                t.answer,
                *split_sentences(t.reference),
                *split_sentences(t.answer),
            )
        ]
    )
    phases["sentence_vectors_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    embedder.token_alignment([(t.reference, t.answer) for t in items])
    phases["token_alignment_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    judge.predict(items)
    phases["features_and_classifier_s"] = time.perf_counter() - t0
    cold_s = sum(phases.values())

    warm_s = judge_seconds(judge, tasks)  # every text is in the memo now
    cold_judge = ReferenceJudge(embedder=Embedder())
    cold_end_to_end_s = judge_seconds(cold_judge, tasks)

    flops, n_tokens = minilm_flops(embedder, items)
    encode_s = phases["sentence_vectors_s"] + phases["token_alignment_s"]
    res = {
        "date": time.strftime("%Y-%m-%d"),
        "host": platform.node(),
        "cpu": platform.processor() or platform.machine(),
        "threads": args.threads,
        "items": len(items),
        "item_source": source,
        "warm_items_per_s": round(len(items) / warm_s, 1),
        "cold_items_per_s": round(len(items) / cold_end_to_end_s, 2),
        "target_warm_items_per_s": TARGET_ITEMS_PER_S,
        "meets_target": len(items) / warm_s >= TARGET_ITEMS_PER_S,
        "cold_profile_s": {k: round(v, 2) for k, v in phases.items()},
        "cold_profile_share": {k: round(v / cold_s, 3) for k, v in phases.items()},
        "limit": {
            "minilm_tokens_encoded": n_tokens,
            "minilm_gflop": round(flops / 1e9, 1),
            "gemm_gflops_at_minilm_shapes": round(rate, 1),
            "encode_gflops_achieved": round(flops / encode_s / 1e9, 1),
            "encode_share_of_gemm_rate": round(flops / encode_s / 1e9 / rate, 3),
            "cold_items_per_s_limit": round(len(items) / (flops / (rate * 1e9)), 1),
        },
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
