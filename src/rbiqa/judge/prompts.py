"""Versioned rubric prompts shared by every LLM judge (Gemini, local HF model).

A prompt file is never edited in place: a new wording gets a new file (rubric_v2.txt), and its
sha256 (`prompt_hash`) is stored with every judgment and in every cache key, so judgments made under
different wordings can never be mixed up or served from the cache for one another.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from rbiqa.io import InputError, sha256_text

PROMPT_DIR = Path(__file__).with_name("prompts")


@dataclass(frozen=True)
class Rubric:
    name: str
    template: str

    @property
    def sha256(self) -> str:
        return sha256_text(self.template)

    def render(self, question: str, answer: str, reference: str | None = None) -> str:
        return self.template.format(question=question, reference=reference or "", answer=answer)


@lru_cache(maxsize=16)
def load_rubric(name: str) -> Rubric:
    path = PROMPT_DIR / f"{name}.txt"
    if not path.is_file():
        have = sorted(p.stem for p in PROMPT_DIR.glob("*.txt"))
        raise InputError(f"judge prompt {name!r} not found in {PROMPT_DIR}; available: {have}")
    return Rubric(name, path.read_text(encoding="utf-8"))
