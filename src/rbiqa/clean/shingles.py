"""Shingles, number sets and MinHash helpers shared by dedup and the contamination audit (their text
normalisation is rbiqa.textsim's `normalize`)."""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

from datasketch import MinHash

from rbiqa.textsim import normalize, words

_NUM = re.compile(r"\d+(?:[.,]\d+)*")
# LSH candidates whose MinHash estimate is this far below a threshold skip the exact Jaccard: with 64
# permutations the estimate's standard deviation near J=0.75 is ~0.055, so 0.15 is ~2.7 sigma.
ESTIMATE_MARGIN = 0.15


def numbers(text: str) -> frozenset[str]:
    return frozenset(m.replace(",", "") for m in _NUM.findall(unicodedata.normalize("NFKC", text)))


def shingles(text: str, kind: str = "char", size: int = 5) -> set[int]:
    """Hashed shingles: CRC32 of each character k-gram of the normalised text (robust for short
    questions) or word k-gram. Hashing once here makes Jaccard and MinHash work on small ints."""
    norm = normalize(text)
    if kind == "word":
        toks = norm.split()
        grams = [" ".join(toks[i : i + size]) for i in range(len(toks) - size + 1)] or [" ".join(toks)]
    elif kind == "char":
        grams = [norm[i : i + size] for i in range(len(norm) - size + 1)] or [norm]
    else:
        raise ValueError(f"shingle kind must be 'char' or 'word', got {kind!r}")
    return {zlib.crc32(g.encode("utf-8")) for g in grams if g}


def word_ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    toks = words(text)
    if not toks:
        return set()
    if len(toks) < n:
        return {tuple(toks)}
    return {tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)}


def _identity(x: int) -> int:
    return x


def minhashes(shingle_sets: Sequence[set[int]], num_perm: int, seed: int) -> list[MinHash]:
    """MinHash per (already hashed) shingle set, with datasketch's bulk path (shared permutations)."""
    sets = [list(sh) or [0] for sh in shingle_sets]
    if not sets:
        return []
    return list(MinHash.bulk(sets, num_perm=num_perm, seed=seed, hashfunc=_identity))


def strict_config(cls, cfg: Mapping[str, Any], seed: int, section: str):
    """Build a dataclass config from a Hydra mapping, rejecting unknown keys (a typo must not be ignored)."""
    cfg = dict(cfg)
    unknown = set(cfg) - set(cls.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown clean.{section} keys: {sorted(unknown)}")
    return cls(**{**cfg, "seed": seed})
