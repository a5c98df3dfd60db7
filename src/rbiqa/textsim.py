"""Text normalisation and word-set similarity, shared by the clean stage (exact and near-dedup, the
contamination audit) and the rephrase filters.

The two stages normalise differently, and each one's results (which rows are duplicates, which paraphrases
are near-copies) were fixed with its own normalisation, so both are kept here under their own names:

- `normalize` / `words` (clean): NFKC, casefold, every non-word character a space. Words are runs of
  Unicode word characters (letters of any script, digits, `_`); `%` is dropped.
- `canon` / `canon_words` (rephrase): the same, except that `’` becomes `'` first and `%` is kept in the
  text; words are runs of ASCII `[a-z0-9]`, so `_`, `%` and non-ASCII letters separate them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from difflib import SequenceMatcher

_NON_WORD = re.compile(r"[^\w\s]")
_NON_WORD_PCT = re.compile(r"[^\w\s%]")
_SPACE = re.compile(r"\s+")
_ASCII_WORD = re.compile(r"[a-z0-9]+")


def nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def normalize(text: str) -> str:
    """The clean stage's exact-dedup key: NFKC, casefold, punctuation removed, whitespace collapsed."""
    text = nfkc(text).casefold()
    text = _NON_WORD.sub(" ", text)
    return _SPACE.sub(" ", text).strip()


def words(text: str) -> list[str]:
    """The clean stage's words: the whitespace-separated tokens of `normalize`."""
    return normalize(text).split()


def canon(text: str) -> str:
    """The rephrase filters' form: lower-case, punctuation-free (`%` kept), single-spaced."""
    text = nfkc(text).casefold().replace("’", "'")
    text = _NON_WORD_PCT.sub(" ", text)
    return _SPACE.sub(" ", text).strip()


def canon_words(text: str) -> list[str]:
    """The rephrase filters' words: the ASCII letter/digit runs of `canon`."""
    return _ASCII_WORD.findall(canon(text))


def jaccard(a: Iterable, b: Iterable) -> float:
    """|a & b| / |a | b| of the two sets (1.0 when both are empty)."""
    a = a if isinstance(a, set | frozenset) else set(a)
    b = b if isinstance(b, set | frozenset) else set(b)
    return len(a & b) / len(a | b) if (a or b) else 1.0


def edit_similarity(a: str, b: str) -> float:
    """difflib ratio on the canonical forms (1.0 = identical after `canon`)."""
    return SequenceMatcher(None, canon(a), canon(b), autojunk=False).ratio()
