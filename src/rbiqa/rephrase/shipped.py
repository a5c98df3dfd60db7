"""Rephrasings shipped as data: every source question of the sample corpus has 3 training paraphrases
and 1 held-out paraphrase, written for this project (data/sample/paraphrases.jsonl).

No offline instruct model good enough to rephrase exists on the package registries: SmolLM2-135M passes
the filters with ~17% of its candidates, which leaves most questions short of k. The shipped paraphrases
are served as candidates through exactly the path LLM output takes (the same filters, dedup and
contamination audit, and the same rejection counts), so the default study can compare k = 0 and k = 3.
The backend reports itself as hand-written data, never as a model.

File format, one JSON object per line: {"id": <source id>, "train": [<3 paraphrases>], "heldout": <1>}.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rbiqa.io import InputError, sha256_file
from rbiqa.rephrase.backends import GenRequest, GenResult


class ShippedRow(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    id: str = Field(min_length=1)
    train: list[str] = Field(min_length=1)
    heldout: str = Field(min_length=1)


def load_shipped(path: Path) -> dict[str, ShippedRow]:
    """Every row validated; a bad line or a repeated id is an error naming the line (nothing skipped)."""
    if not path.exists():
        raise InputError(f"no shipped paraphrases at {path}: set rephrase.path, or use an LLM backend")
    rows: dict[str, ShippedRow] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = ShippedRow.model_validate(json.loads(line))
            except (json.JSONDecodeError, ValidationError) as e:
                raise InputError(f"{path}: line {lineno} is not a shipped-paraphrase row: {e}") from None
            if row.id in rows:
                raise InputError(f"{path}: line {lineno} repeats source id {row.id!r}")
            rows[row.id] = row
    if not rows:
        raise InputError(f"{path} has no rows")
    return rows


class ShippedBackend:
    """Serves the shipped paraphrases as candidates. A request for n candidates of a source that needs a
    held-out wording gets its first n-1 training paraphrases and then the designated held-out one (its
    slot is reported, so the stage holds out exactly that one); otherwise the first n training ones."""

    name = "shipped"

    def __init__(self, path: str | Path, k: int, prompt: Any = None, cache: Any = None):
        """`prompt` and `cache`, which the stage gives every backend, are not used: the paraphrases are
        served as written, with no prompt and nothing to cache."""
        self.path = Path(str(path))
        self.rows = load_shipped(self.path)
        self.sha256 = sha256_file(self.path)
        self.n_train = min(len(r.train) for r in self.rows.values())
        self.served = 0
        k = int(k)
        if k > self.n_train:
            raise InputError(
                f"rephrase.k={k}, but {self.path} ships {self.n_train} training paraphrase(s) for some "
                "questions; lower rephrase.k or use an LLM backend (rephrase=hf_local|gemini|openai_compatible)"
            )

    def generate(self, requests: Sequence[GenRequest]) -> list[GenResult]:
        out = []
        for r in requests:
            row = self.rows.get(r.source_id)
            if row is None:
                out.append(
                    GenResult(r, error=f"no shipped paraphrase for source {r.source_id!r} in {self.path}")
                )
                continue
            if r.attempt > 0:  # the file holds one set per source: a retry round has nothing new to offer
                out.append(GenResult(r, texts=[]))
                continue
            n_train = r.n - 1 if r.heldout else r.n
            texts = list(row.train[:n_train])
            held = None
            if r.heldout:
                held = len(texts)
                texts.append(row.heldout)
            self.served += len(texts)
            out.append(GenResult(r, texts=texts, heldout_slot=held))
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model_id": "hand-written paraphrases (no model)",
            "path": self.path.as_posix(),
            "paraphrases_sha256": self.sha256,
        }

    def call_stats(self) -> dict[str, Any]:
        return {"model_calls": 0, "candidates_served": self.served}
