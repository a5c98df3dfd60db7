"""The reference judge's feature vector for one (question, reference, answer) triple.

Kept separate from the model so that fitting (`fit`) and judging (`model`) compute
exactly the same features in the same order: the shipped parameter file names them, and a mismatch
is an error rather than a silently wrong prediction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from rbiqa.judge.reference.embeddings import ALIGN_STATS
from rbiqa.judge.reference.numbers import quantity_scores
from rbiqa.judge.reference.text_features import lexical_scores, split_sentences

EMBEDDING_FEATURES = (
    "cos_answer_reference",
    "cos_answer_question",
    "sent_coverage_mean",  # mean over reference sentences of the best-matching answer sentence
    "sent_coverage_min",  # the worst-covered reference sentence: a missed key fact
    "sent_support_mean",  # mean over answer sentences of the best-matching reference sentence
    *ALIGN_STATS,  # token-level alignment in context (BERTScore-style), see embeddings.ALIGN_STATS
)


@dataclass(frozen=True)
class Triple:
    question: str
    reference: str
    answer: str


def _normalise_for_embedding(text: str) -> str:
    # MiniLM rates "4.5 per cent" and "4.5%" as only moderately similar; give it one spelling.
    return text.replace("per cent", "%").replace("percent", "%").replace("₹", "Rs ")


def embedding_scores(triples: Sequence[Triple], embedder, progress: bool = False) -> list[dict[str, float]]:
    texts: list[str] = []
    for t in triples:
        texts += [t.question, t.reference, t.answer]
        texts += split_sentences(t.reference) + split_sentences(t.answer)
    embedder.encode([_normalise_for_embedding(x) for x in texts], progress=progress)

    def enc(xs: list[str]) -> np.ndarray:
        return embedder.encode([_normalise_for_embedding(x) for x in xs])

    align = embedder.token_alignment([(t.reference, t.answer) for t in triples], progress=progress)
    out = []
    for t, stats in zip(triples, align, strict=True):
        q, r, a = enc([t.question, t.reference, t.answer])
        rs, as_ = enc(split_sentences(t.reference)), enc(split_sentences(t.answer))
        sim = rs @ as_.T  # (reference sentences, answer sentences)
        out.append(
            {
                "cos_answer_reference": float(a @ r),
                "cos_answer_question": float(a @ q),
                "sent_coverage_mean": float(sim.max(axis=1).mean()),
                "sent_coverage_min": float(sim.max(axis=1).min()),
                "sent_support_mean": float(sim.max(axis=0).mean()),
                **{name: float(v) for name, v in zip(ALIGN_STATS, stats, strict=True)},
            }
        )
    return out


def feature_dicts(triples: Sequence[Triple], embedder, progress: bool = False) -> list[dict[str, float]]:
    emb = embedding_scores(triples, embedder, progress=progress)
    rows = []
    for t, e in tqdm(
        list(zip(triples, emb, strict=True)), desc="features", disable=not progress, unit="item"
    ):
        row = dict(e)
        row.update(lexical_scores(t.question, t.reference, t.answer))
        row.update(quantity_scores(t.reference, t.answer, t.question))
        rows.append(row)
    return rows


def derived(row: dict[str, float]) -> dict[str, float]:
    """Transforms and interactions the linear model cannot build on its own."""
    out = dict(row)
    out["num_missing_any"] = float(row["num_ref_count"] > 0 and row["num_recall"] < 1)
    out["num_conflict_any"] = float(row["num_conflicts"] > 0)
    out["has_ref_numbers"] = float(row["num_ref_count"] > 0)
    out["cos_x_kw_recall"] = row["cos_answer_reference"] * row["kw_recall_novel"]
    out["hedged"] = float(row["hedges"] > 0)
    out.pop("num_ref_count")
    out.pop("num_ans_count")
    out.pop("num_conflicts")
    return out


def feature_matrix(
    triples: Sequence[Triple], embedder, names: Sequence[str] | None = None, progress: bool = False
) -> tuple[np.ndarray, list[str]]:
    rows = [derived(r) for r in feature_dicts(triples, embedder, progress=progress)]
    have = sorted(rows[0]) if rows else list(names or [])
    names = list(names) if names is not None else have
    if rows and set(names) != set(have):
        raise ValueError(
            f"feature names differ from the fitted parameters: missing {sorted(set(names) - set(have))}, "
            f"unexpected {sorted(set(have) - set(names))}; refit with `python -m rbiqa.judge.reference.fit`"
        )
    x = np.array([[r[n] for n in names] for r in rows], dtype=np.float64).reshape(len(rows), len(names))
    return x, names
