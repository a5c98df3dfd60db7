"""Exact and near-duplicate removal within one split.

Rows are visited in priority order: original questions (variant 0) before paraphrases, then input order.
A row is removed only in favour of a row already kept, so an original is never removed in favour of one
of its paraphrases. Near-duplicates are found with MinHash LSH and then confirmed with the exact Jaccard
of the shingle sets (LSH only proposes candidates). Paraphrases of one source are expected to be similar;
the threshold is set high so that only near-copies go.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from datasketch import MinHashLSH
from tqdm.auto import tqdm

from rbiqa import textsim
from rbiqa.clean import shingles as S


@dataclass(frozen=True)
class DedupConfig:
    near: bool = True
    threshold: float = 0.85  # Jaccard of shingle sets at or above which two texts are near-copies
    lsh_threshold: float = 0.6  # LSH proposes pairs above this (recall); exact Jaccard confirms
    num_perm: int = 128
    shingle: str = "char"  # char | word
    shingle_size: int = 5
    require_same_numbers: bool = True  # "Rs 400 crore" vs "Rs 1,000 crore" are different questions
    seed: int = 1

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], seed: int) -> DedupConfig:
        return S.strict_config(cls, cfg, seed, "dedup")


def priority(row: Mapping[str, Any]) -> tuple[int, int]:
    v = row.get("variant_idx")
    return (0 if not v else 1, v or 0)


def dedup(
    rows: Sequence[Mapping[str, Any]],
    cfg: DedupConfig,
    text_key: str = "question",
    id_key: str = "row_id",
    progress: bool = True,
) -> tuple[list[int], list[dict[str, Any]]]:
    """Return (indices of kept rows in input order, removal records {index, reason, dup_of, similarity})."""
    order = sorted(range(len(rows)), key=lambda i: (priority(rows[i]), i))
    texts = [str(rows[i][text_key]) for i in range(len(rows))]
    seen_exact: dict[str, int] = {}
    removed: list[dict[str, Any]] = []
    survivors: list[int] = []
    for i in order:
        key = textsim.normalize(texts[i])
        if key in seen_exact:
            removed.append(
                {
                    "index": i,
                    "reason": "exact_dup",
                    "dup_of": rows[seen_exact[key]][id_key],
                    "similarity": 1.0,
                }
            )
        else:
            seen_exact[key] = i
            survivors.append(i)
    if not cfg.near or len(survivors) < 2:
        return sorted(survivors), removed

    sh = {i: S.shingles(texts[i], cfg.shingle, cfg.shingle_size) for i in survivors}
    mhs = dict(zip(survivors, S.minhashes([sh[i] for i in survivors], cfg.num_perm, cfg.seed), strict=True))
    nums = {i: S.numbers(texts[i]) for i in survivors} if cfg.require_same_numbers else {}
    lsh = MinHashLSH(threshold=cfg.lsh_threshold, num_perm=cfg.num_perm)
    kept: list[int] = []
    for i in tqdm(survivors, desc="near-dedup", unit="row", disable=not progress, mininterval=2):
        best, best_sim = None, 0.0
        for j in lsh.query(mhs[i]):
            if cfg.require_same_numbers and nums[i] != nums[j]:
                continue
            if mhs[i].jaccard(mhs[j]) < cfg.threshold - S.ESTIMATE_MARGIN:
                continue
            sim = textsim.jaccard(sh[i], sh[j])
            if sim >= cfg.threshold and (sim > best_sim or (sim == best_sim and j < (best or j + 1))):
                best, best_sim = j, sim
        if best is not None:
            removed.append(
                {
                    "index": i,
                    "reason": "near_dup",
                    "dup_of": rows[best][id_key],
                    "similarity": round(best_sim, 4),
                }
            )
        else:
            lsh.insert(i, mhs[i])
            kept.append(i)
    return sorted(kept), removed
