"""Few-shot example selection.

One seeded shuffle of the training originals fixes a single preference order; each item takes the first
k examples whose source differs from its own. Almost every item therefore sees the same examples (the
arm is one prompt, not a per-item lottery), the choice is reproducible from the seed alone, and an item
of test_paraphrase, whose source is in training, never sees its own answer as an example.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from rbiqa.io import InputError


class FewShotSelector:
    def __init__(self, pool: Sequence[dict], k: int, seed: int):
        if k < 0:
            raise InputError(f"generate.fewshot.k must be >= 0, got {k}")
        # sorting first makes the order independent of the row order of train.jsonl
        order = sorted(pool, key=lambda r: str(r["row_id"]))
        random.Random(seed).shuffle(order)
        self.order = order
        self.k = k
        if k and len({r["source_id"] for r in order}) < k + 1:
            raise InputError(
                f"few-shot needs at least k+1={k + 1} distinct training sources, "
                f"the training file has {len({r['source_id'] for r in order})}"
            )

    def select(self, source_id: str) -> list[dict]:
        """k examples, none from `source_id`, and at most one per source (no near-duplicate pairs)."""
        chosen: list[dict] = []
        used = {source_id}
        for row in self.order:
            if len(chosen) == self.k:
                break
            if row["source_id"] in used:
                continue
            used.add(row["source_id"])
            chosen.append(row)
        return chosen
