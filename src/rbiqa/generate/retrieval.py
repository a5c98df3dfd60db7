"""BM25 retrieval over the training QA pairs for the `rag` arm.

The index is rebuilt in every job: a few thousand short documents index in well under a second, which
is cheaper than keeping a cache consistent with train.jsonl. Each document is the question and answer of
one original (variant_idx == 0) pair, so a query can match either the wording of the question or the
terms of the rule in the answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rbiqa.io import InputError


@dataclass(frozen=True)
class Hit:
    row_id: str
    score: float
    doc: dict


def _stemmer(name: str | None):
    if not name:
        return None
    try:
        import Stemmer
    except ImportError as e:
        raise InputError(
            f"generate.rag.stemmer={name!r} needs PyStemmer (`pip install PyStemmer`), "
            "or set generate.rag.stemmer=null"
        ) from e
    return Stemmer.Stemmer(name)


def doc_text(row: dict) -> str:
    return f"{row['question']}\n{row['answer']}"


class BM25Retriever:
    def __init__(self, docs: Sequence[dict], stemmer: str | None = "english", stopwords: str | None = "en"):
        import bm25s
        from bm25s.tokenization import Tokenizer

        if not docs:
            raise InputError("the retrieval corpus is empty")
        self.docs = list(docs)
        self.tokenizer = Tokenizer(stopwords=stopwords or [], stemmer=_stemmer(stemmer))
        corpus = self.tokenizer.tokenize(
            [doc_text(d) for d in self.docs], update_vocab=True, return_as="ids", show_progress=False
        )
        self.bm25 = bm25s.BM25()
        self.bm25.index(corpus, show_progress=False)

    def search(self, query: str, n: int) -> list[Hit]:
        """Top-n documents, best first; documents that share no term with the query are never returned."""
        n = min(n, len(self.docs))
        if n <= 0:
            return []
        ids = self.tokenizer.tokenize([query], update_vocab=False, return_as="ids", show_progress=False)
        if not ids[0]:
            return []
        idx, scores = self.bm25.retrieve(ids, k=n, show_progress=False)
        return [
            Hit(str(self.docs[int(i)]["row_id"]), float(s), self.docs[int(i)])
            for i, s in zip(idx[0], scores[0], strict=True)
            if s > 0
        ]
