"""Teacher-forced loss of each item's reference answer under the arm's own prompt.

A check that does not depend on the judge: if fine-tuning taught the trained facts, the mean negative
log-likelihood per token of the reference answer falls on test_trained (the trained wording) and, if the
facts transfer, on test_paraphrase. The prompt is exactly the one the arm answers from (system turn,
few-shot examples or retrieved passages included), and the answer's tokens are the ones training trains
on (rbiqa.completion: the answer plus the end-of-turn token).

The turns before the question (the system prompt, and for the few-shot arm its examples) are the same
for nearly every item, so, as in rbiqa.prefix_decoding, their KV cache is computed once and each item
only runs its question and answer; a prompt shape that cannot be split there is scored in full (tests
check that both give the same loss).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from typing import Any

from rbiqa.completion import Messages, end_of_turn, prompt_completion_pairs, tokenize


def _scores(model, rows: list[dict], pad: int, batch_size: int, prefix=None) -> dict[int, dict[str, Any]]:
    """{row["i"]: score} for token rows (input_ids, completion_mask), optionally after a cached prefix
    (prefix = (its length, its KV cache))."""
    import torch
    import torch.nn.functional as F

    dev = next(model.parameters()).device
    out = {}
    order = sorted(rows, key=lambda r: len(r["input_ids"]))  # similar lengths share a batch: less padding
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            b, width = len(chunk), max(len(r["input_ids"]) for r in chunk)
            ids = torch.full((b, width), pad, dtype=torch.long)
            attn = torch.zeros((b, width), dtype=torch.long)
            labels = torch.full((b, width), -100, dtype=torch.long)
            for j, r in enumerate(chunk):
                n = len(r["input_ids"])
                ids[j, :n] = torch.tensor(r["input_ids"])
                attn[j, :n] = 1
                mask = torch.tensor(r["completion_mask"], dtype=torch.bool)
                labels[j, :n] = torch.where(mask, ids[j, :n], torch.full_like(ids[j, :n], -100))
            # position t predicts token t+1: only positions whose next token is an answer token get logits
            targets = labels[:, 1:]
            keep = torch.nonzero((targets != -100).any(dim=0)).squeeze(1)
            kwargs: dict[str, Any] = {"use_cache": prefix is not None}
            if prefix is not None:
                p, cache = prefix
                cache = copy.deepcopy(cache)
                cache.batch_repeat_interleave(b)
                attn = torch.cat([torch.ones((b, p), dtype=torch.long), attn], dim=1)
                kwargs.update(
                    past_key_values=cache, position_ids=(p + torch.arange(width)).expand(b, -1).to(dev)
                )
            logits = model(
                input_ids=ids.to(dev), attention_mask=attn.to(dev), logits_to_keep=keep.to(dev), **kwargs
            ).logits
            tgt = targets[:, keep].to(dev)
            nll = F.cross_entropy(logits.float().transpose(1, 2), tgt, ignore_index=-100, reduction="none")
            for j, r in enumerate(chunk):
                trained = tgt[j] != -100
                n = int(trained.sum())
                out[r["i"]] = {
                    "reference_nll": round(float(nll[j][trained].sum()) / n, 6) if n else None,
                    "reference_tokens": n,
                }
    return out


def reference_nll(
    model,
    tokenizer,
    conversations: Sequence[Messages],
    references: Sequence[str],
    batch_size: int = 8,
    prefix_cache: bool = True,
) -> list[dict[str, Any]]:
    """{"reference_nll": mean NLL per answer token (nats), "reference_tokens": n} per conversation."""
    from rbiqa.prefix_decoding import PrefixCachedSampler, PrefixMismatchError

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    groups: dict[str, list[int]] = {}
    for i, conv in enumerate(conversations):
        key = json.dumps(list(conv[:-1]), sort_keys=True) if prefix_cache else ""
        groups.setdefault(key, []).append(i)
    scores: dict[int, dict[str, Any]] = {}
    for idx in groups.values():
        prefix = list(conversations[idx[0]][:-1]) if prefix_cache else []
        cached = None
        if prefix:
            try:
                cached = PrefixCachedSampler(model, tokenizer, prefix, stop_at_newline=False)
            except PrefixMismatchError:
                cached = None
        if cached is None:
            pairs = prompt_completion_pairs(
                tokenizer, [conversations[i] for i in idx], [references[i] for i in idx]
            )
            rows, _ = tokenize([p | {"i": i} for i, p in zip(idx, pairs, strict=True)], tokenizer, 1 << 30)
            scores.update(_scores(model, rows, pad, batch_size))
            continue
        eot = end_of_turn(tokenizer)
        pairs = [
            {"prompt": cached.suffix_text(conversations[i][-1]["content"]), "completion": references[i].strip() + eot,
             "i": i}
            for i in idx
        ]  # fmt: skip
        rows, _ = tokenize(pairs, tokenizer, 1 << 30)
        scores.update(_scores(model, rows, pad, batch_size, (len(cached.prefix_ids), cached.prefix_cache)))
    return [scores.get(i, {"reference_nll": None, "reference_tokens": 0}) for i in range(len(conversations))]
