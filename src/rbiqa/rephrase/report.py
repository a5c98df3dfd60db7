"""rephrase_report.json: what was asked, what came back, what passed, and what is missing."""

from __future__ import annotations

from collections import Counter
from typing import Any


def prompt_identity(backend, prompt) -> dict[str, Any]:
    """The prompt that produced the candidates (none for the shipped paraphrases)."""
    if backend.name == "shipped":
        return {"prompt_version": None, "prompt_sha256": None}
    return {"prompt_version": prompt.version, "prompt_sha256": prompt.sha256}


def build_report(cfg, backend, prompt, states, rejected, rounds, cache_stats, k) -> dict[str, Any]:
    reasons = Counter(r for row in rejected for r in row["reasons"])
    primary = Counter(row["reasons"][0] for row in rejected)
    train_yield = Counter()
    short, missing_total = [], 0
    para_total, para_with, para_without = 0, 0, []
    for sid, st in states.items():
        n = len(st.accepted)
        if st.need > k:  # a source with a held-out wording (test_paraphrase or val_paraphrase)
            para_total += 1
            if n:
                para_with += 1
            else:
                para_without.append(sid)
            n_train = max(n - 1, 0)
        else:
            n_train = n
        train_yield[min(n_train, k)] += 1
        if n_train < k:
            short.append(sid)
            missing_total += k - n_train
    n_sources = len(states)
    n_cand = sum(r["candidates"] for r in rounds)
    n_acc = sum(r["accepted"] for r in rounds)
    return {
        **backend.describe(),
        **prompt_identity(backend, prompt),
        "k": k,
        "seed": int(cfg.seed),
        "sources": n_sources,
        "calls": {**backend.call_stats(), "cache": cache_stats},
        "rounds": rounds,
        "candidates": {
            "generated": n_cand,
            "accepted": n_acc,
            "acceptance_rate": round(n_acc / n_cand, 4) if n_cand else None,
        },  # fmt: skip
        "rejections": {
            "candidates_rejected": len(rejected),
            "by_reason": dict(sorted(reasons.items())),
            "by_primary_reason": dict(sorted(primary.items())),
        },
        "yield": {
            "train_rephrasings_per_source": {str(i): train_yield.get(i, 0) for i in range(k + 1)},
            "mean_train_rephrasings": round(sum(i * c for i, c in train_yield.items()) / n_sources, 3)
            if n_sources
            else 0.0,  # fmt: skip
            "train_rephrasings_total": sum(i * c for i, c in train_yield.items()),
            "target_total": k * n_sources,
        },
        "shortfall": {"sources_short": len(short), "missing_rephrasings": missing_total, "source_ids": short},
        # sources that need a held-out wording (para_eval: test_paraphrase; val_para: val_paraphrase)
        "para_eval": {"sources": para_total, "with_heldout": para_with, "without_heldout": para_without},
    }
