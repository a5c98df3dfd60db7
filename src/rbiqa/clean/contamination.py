"""Train/test contamination audit: does any training text (question or answer) nearly copy an
evaluation question?

Two detectors, both reported with their thresholds:
- word n-gram containment: the share of the test question's word n-grams found in the training text.
  n is larger for long questions and smaller for short ones (a 10-word question has few 8-grams).
- MinHash Jaccard between training and test questions (LSH proposes, the exact Jaccard of the shingle
  sets confirms).

A hit between different source ids is contamination and the training row is removed. A hit within one
source id is expected for test_paraphrase (its held-out rephrasing paraphrases a training question on
purpose) and is reported, not removed.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from datasketch import MinHashLSH
from tqdm.auto import tqdm

from rbiqa import textsim
from rbiqa.clean import shingles as S

MIN_DF_CAP = 20  # with few test questions, any n-gram shared by up to 20 of them still proposes pairs


@dataclass(frozen=True)
class ContaminationConfig:
    ngram_n: int = 8  # n for test questions of at least `long_min_words` words
    short_ngram_n: int = 5  # n for shorter questions
    long_min_words: int = 16
    ngram_threshold: float = 0.6  # containment share of the test question's n-grams
    ngram_max_df: float = 0.01  # n-grams in more than this share of test questions are boilerplate
    minhash_threshold: float = 0.75  # Jaccard of question shingle sets
    lsh_threshold: float = 0.6  # LSH proposes pairs above this (recall); exact Jaccard confirms
    num_perm: int = 128
    shingle: str = "char"
    shingle_size: int = 5
    # a numeric variant ("Rs 400 crore" vs "Rs 900 crore") is reported, not removed
    require_same_numbers: bool = True
    whole_source: bool = True  # a contaminated original (variant 0) removes all rows of its source
    seed: int = 1

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], seed: int) -> ContaminationConfig:
        return S.strict_config(cls, cfg, seed, "contamination")

    def n_for(self, n_words: int) -> int:
        return self.ngram_n if n_words >= self.long_min_words else self.short_ngram_n


@dataclass(frozen=True)
class EvalText:
    item_id: str
    source_id: str
    eval_set: str
    question: str


@dataclass(frozen=True)
class TrainText:
    row_id: str
    source_id: str
    field: str  # question | answer
    text: str


def audit(
    train: Sequence[TrainText], tests: Sequence[EvalText], cfg: ContaminationConfig, progress: bool = True
) -> list[dict[str, Any]]:
    """Every (training text, test question) pair over a threshold, with the detector values."""
    if not train or not tests:
        return []
    ns = sorted({cfg.ngram_n, cfg.short_ngram_n})
    test_n = [cfg.n_for(len(textsim.words(t.question))) for t in tests]
    test_grams = [S.word_ngrams(t.question, n) for t, n in zip(tests, test_n, strict=True)]
    # Candidates come from n-grams that few test questions share: boilerplate ("what are the
    # requirements for a bank to") would make every pair a candidate. Containment is then computed on
    # all n-grams. A test question made only of boilerplate is still covered by the MinHash detector.
    df = Counter((n, g) for n, grams in zip(test_n, test_grams, strict=True) for g in grams)
    max_df = max(MIN_DF_CAP, int(cfg.ngram_max_df * len(tests)))
    index: dict[int, dict[tuple[str, ...], list[int]]] = {n: defaultdict(list) for n in ns}
    n_boiler = [0] * len(tests)
    for t_i, (n, grams) in enumerate(zip(test_n, test_grams, strict=True)):
        for g in grams:
            if df[(n, g)] <= max_df:
                index[n][g].append(t_i)
            else:
                n_boiler[t_i] += 1

    test_sh = [S.shingles(t.question, cfg.shingle, cfg.shingle_size) for t in tests]
    test_mh = S.minhashes(test_sh, cfg.num_perm, cfg.seed)
    lsh = MinHashLSH(threshold=cfg.lsh_threshold, num_perm=cfg.num_perm)
    for t_i, m in enumerate(test_mh):
        lsh.insert(t_i, m)
    test_nums = [S.numbers(t.question) for t in tests]

    q_rows = [i for i, r in enumerate(train) if r.field == "question"]
    q_sh = {i: S.shingles(train[i].text, cfg.shingle, cfg.shingle_size) for i in q_rows}
    q_mh = dict(zip(q_rows, S.minhashes([q_sh[i] for i in q_rows], cfg.num_perm, cfg.seed), strict=True))

    hits: list[dict[str, Any]] = []
    for i, r in enumerate(
        tqdm(train, desc="contamination", unit="text", disable=not progress, mininterval=2)
    ):
        grams = {n: S.word_ngrams(r.text, n) for n in ns}
        shared = Counter(t_i for n in ns for g in grams[n] for t_i in index[n].get(g, ()))
        cand: dict[int, float] = {}
        for t_i, c in shared.items():
            # shared rare grams + all of the test's boilerplate grams bound the containment from above
            if (c + n_boiler[t_i]) / len(test_grams[t_i]) >= cfg.ngram_threshold:
                cand[t_i] = len(test_grams[t_i] & grams[test_n[t_i]]) / len(test_grams[t_i])
        jac: dict[int, float] = {}
        if r.field == "question":
            for t_i in lsh.query(q_mh[i]):
                if q_mh[i].jaccard(test_mh[t_i]) >= cfg.minhash_threshold - S.ESTIMATE_MARGIN:
                    jac[t_i] = textsim.jaccard(q_sh[i], test_sh[t_i])
        for t_i in set(cand) | set(jac):
            if t_i not in cand:  # a MinHash-only candidate: report its containment too
                cand[t_i] = len(test_grams[t_i] & grams[test_n[t_i]]) / max(len(test_grams[t_i]), 1)
            containment = round(min(cand[t_i], 1.0), 4)
            jaccard = round(jac.get(t_i, 0.0), 4)
            by_ngram = containment >= cfg.ngram_threshold
            by_minhash = jaccard >= cfg.minhash_threshold
            if not (by_ngram or by_minhash):
                continue
            t = tests[t_i]
            numbers_differ = bool(test_nums[t_i] != S.numbers(r.text)) if r.field == "question" else False
            hits.append(
                {
                    "train_row_id": r.row_id,
                    "train_source_id": r.source_id,
                    "train_field": r.field,
                    "test_item_id": t.item_id,
                    "test_source_id": t.source_id,
                    "eval_set": t.eval_set,
                    "same_source": r.source_id == t.source_id,
                    "ngram_containment": containment,
                    "ngram_n": test_n[t_i],
                    "jaccard": jaccard,
                    "detector": "+".join(d for d, on in (("ngram", by_ngram), ("minhash", by_minhash)) if on),
                    "numbers_differ": numbers_differ,
                }
            )
    return hits


def is_contamination(hit: Mapping[str, Any], cfg: ContaminationConfig) -> bool:
    """Cross-source near-copies are contamination; a numeric variant of a question is not (if configured)."""
    if hit["same_source"]:
        return False
    return not (cfg.require_same_numbers and hit["numbers_differ"])
