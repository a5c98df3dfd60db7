"""Batched decoding from a local chat model, with the prompt prefix its requests share computed once.

Every rephrasing request starts with the same system turn and few-shot examples (~170 tokens) and ends
with a ~25-token question; every answer request of an arm starts with the same system turn (and, for the
few-shot arm, nearly always the same examples). On a 2-core CPU, re-encoding that prefix per item costs a
large part of a stage's time budget. Here the prefix's KV cache is computed once and reused; the
variable suffix is left-padded *after* the prefix (padding in the middle is masked and position ids come
from the mask, so results match rbiqa.models.chat_generate; tests check this under greedy decoding).
Rows that finish leave the batch, where `model.generate` keeps decoding them until the longest ends.

Sampling uses one torch.Generator per row, seeded per item, so an item's output does not depend on which
other items share its batch: a resumed run reproduces what an uninterrupted run would have produced.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Sequence
from typing import Any

import torch

Messages = list[dict[str, str]]

log = logging.getLogger(__name__)


class PrefixMismatchError(ValueError):
    """The chat template does not render prefix + turn as prefix-text + turn-text; no caching then."""


class PrefixCachedSampler:
    def __init__(self, model, tokenizer, prefix: Messages, stop_at_newline: bool = True):
        self.model = model
        self.tok = tokenizer
        self.prefix = list(prefix)
        self.device = next(model.parameters()).device
        self.prefix_text = tokenizer.apply_chat_template(self.prefix, tokenize=False)
        self.prefix_ids = tokenizer(self.prefix_text, add_special_tokens=False)["input_ids"]
        self._check_split("What is the probe question?")
        with torch.no_grad():
            ids = torch.tensor([self.prefix_ids], device=self.device)
            self.prefix_cache = model(input_ids=ids, use_cache=True).past_key_values
        eos = tokenizer.eos_token_id
        self.stop_ids = {eos} if isinstance(eos, int) else set(eos or [])
        gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        if gen_eos is not None:
            self.stop_ids |= {gen_eos} if isinstance(gen_eos, int) else set(gen_eos)
        # generation ends at the first newline: only the first line is used as the candidate
        self.newline_ids = (
            {i for t, i in tokenizer.get_vocab().items() if "\n" in tokenizer.convert_tokens_to_string([t])}
            if stop_at_newline
            else set()
        )

    def suffix_text(self, user: str) -> str:
        full = self.tok.apply_chat_template(
            [*self.prefix, {"role": "user", "content": user}], tokenize=False, add_generation_prompt=True
        )
        if not full.startswith(self.prefix_text):
            raise PrefixMismatchError("chat template output does not start with the rendered prefix")
        return full[len(self.prefix_text) :]

    def _check_split(self, probe: str) -> None:
        full = self.tok.apply_chat_template(
            [*self.prefix, {"role": "user", "content": probe}], tokenize=False, add_generation_prompt=True
        )
        whole = self.tok(full, add_special_tokens=False)["input_ids"]
        parts = self.prefix_ids + self.tok(self.suffix_text(probe), add_special_tokens=False)["input_ids"]
        if whole != parts:
            raise PrefixMismatchError("tokenising prefix and suffix separately changes the tokens")

    def full_prompt_tokens(self, user: str) -> int:
        return len(self.prefix_ids) + len(
            self.tok(self.suffix_text(user), add_special_tokens=False)["input_ids"]
        )

    @torch.no_grad()
    def generate(
        self,
        users: Sequence[str],
        seeds: Sequence[int],
        max_new_tokens: int | Sequence[int] = 48,
        do_sample: bool = True,
        temperature: float = 1.0,
        top_p: float = 1.0,
    ) -> list[dict[str, Any]]:
        """One batch: returns {text, token_ids, n_new_tokens, n_prompt_tokens, seconds} per user turn, in
        order (seconds: the batch's wall time shared equally, as chat_generate reports it).
        `max_new_tokens` may be one limit per item (a row stops decoding once it reaches its own)."""
        if len(users) != len(seeds):
            raise ValueError("one seed per item")
        limits = [max_new_tokens] * len(users) if isinstance(max_new_tokens, int) else list(max_new_tokens)
        if len(limits) != len(users):
            raise ValueError("one max_new_tokens per item")
        if not users:
            return []
        t0 = time.perf_counter()
        b = len(users)
        suffixes = [self.tok(self.suffix_text(u), add_special_tokens=False)["input_ids"] for u in users]
        width = max(map(len, suffixes))
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        ids = torch.full((b, width), pad, dtype=torch.long)
        smask = torch.zeros((b, width), dtype=torch.long)
        for i, s in enumerate(suffixes):
            ids[i, width - len(s) :] = torch.tensor(s)
            smask[i, width - len(s) :] = 1
        p = len(self.prefix_ids)
        mask = torch.cat([torch.ones((b, p), dtype=torch.long), smask], dim=1).to(self.device)
        ids = ids.to(self.device)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)[:, p:]
        cache = copy.deepcopy(self.prefix_cache)
        cache.batch_repeat_interleave(b)
        gens = [torch.Generator(device="cpu").manual_seed(int(s)) for s in seeds]

        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=pos,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        cache = out.past_key_values
        logits = out.logits[:, -1, :]
        new_tokens: list[list[int]] = [[] for _ in range(b)]
        active = list(range(b))  # rows still decoding; finished rows leave the batch (and the cache)
        last_pos = pos[:, -1:]
        for _ in range(max(limits)):
            step_logits = logits.float().cpu()
            keep = []
            for j, i in enumerate(active):
                t = self._pick(step_logits[j], gens[i], do_sample, temperature, top_p)
                if t in self.stop_ids:
                    continue
                new_tokens[i].append(t)
                if t not in self.newline_ids and len(new_tokens[i]) < limits[i]:
                    keep.append(j)
            if not keep:
                break
            if len(keep) < len(active):
                idx = torch.tensor(keep, device=self.device)
                cache.reorder_cache(idx)
                mask, last_pos = mask[idx], last_pos[idx]
            active = [active[j] for j in keep]
            step = torch.tensor([[new_tokens[i][-1]] for i in active], device=self.device)
            mask = torch.cat(
                [mask, torch.ones((len(active), 1), dtype=torch.long, device=self.device)], dim=1
            )
            last_pos = last_pos + 1
            out = self.model(
                input_ids=step,
                attention_mask=mask,
                position_ids=last_pos,
                past_key_values=cache,
                use_cache=True,
                logits_to_keep=1,
            )
            cache = out.past_key_values
            logits = out.logits[:, -1, :]
        per_item = (time.perf_counter() - t0) / b
        return [
            {
                "text": self.tok.decode(toks, skip_special_tokens=True).strip(),
                "token_ids": toks,
                "n_new_tokens": len(toks),
                "n_prompt_tokens": p + len(s),
                "seconds": per_item,
            }
            for toks, s in zip(new_tokens, suffixes, strict=True)
        ]

    @staticmethod
    def _pick(
        logits: torch.Tensor, gen: torch.Generator, do_sample: bool, temperature: float, top_p: float
    ) -> int:
        if not do_sample or temperature <= 0:
            return int(torch.argmax(logits))
        probs = torch.softmax(logits / temperature, dim=-1)
        if top_p < 1.0:
            # nucleus over the 256 most likely tokens: a chat model's nucleus is far smaller
            sp, si = torch.topk(probs, k=min(256, probs.numel()))
            keep = sp.cumsum(-1) - sp < top_p  # always keeps the most likely token
            sp = torch.where(keep, sp, torch.zeros_like(sp))
            return int(si[torch.multinomial(sp / sp.sum(), 1, generator=gen)])
        return int(torch.multinomial(probs, 1, generator=gen))


class PrefixGroupedGreedy:
    """Greedy answers for a batch of conversations, each group sharing the turns before its last user turn
    decoded with one PrefixCachedSampler (kept for later batches). A group whose chat template cannot be
    split at the prefix falls back to rbiqa.models.chat_generate, with the same greedy output."""

    def __init__(self, model, tokenizer, max_new_tokens: int):
        self.model, self.tok, self.max_new_tokens = model, tokenizer, int(max_new_tokens)
        self.samplers: dict[str, PrefixCachedSampler | None] = {}

    def _sampler(self, prefix: Messages) -> PrefixCachedSampler | None:
        key = json.dumps(prefix, sort_keys=True)
        if key not in self.samplers:
            try:
                self.samplers[key] = PrefixCachedSampler(self.model, self.tok, prefix, stop_at_newline=False)
            except PrefixMismatchError as e:
                log.warning("no prefix cache for this prompt shape (%s): decoding it in full", e)
                self.samplers[key] = None
        return self.samplers[key]

    def __call__(
        self, conversations: Sequence[Messages], limits: Sequence[int] | None = None
    ) -> list[dict[str, Any]]:
        """`limits`: each conversation's decoding budget (default: max_new_tokens)."""
        from rbiqa.models import chat_generate, truncate_output

        limits = list(limits) if limits is not None else [self.max_new_tokens] * len(conversations)
        groups: dict[str, list[int]] = {}
        for i, conv in enumerate(conversations):
            if not conv or conv[-1].get("role") != "user":
                raise ValueError("each conversation must end with a user turn")
            groups.setdefault(json.dumps(list(conv[:-1]), sort_keys=True), []).append(i)
        out: list[dict[str, Any] | None] = [None] * len(conversations)
        for idx in groups.values():
            prefix = list(conversations[idx[0]][:-1])
            sampler = self._sampler(prefix) if prefix else None
            if sampler is None:
                rows = chat_generate(
                    self.model,
                    self.tok,
                    [conversations[i] for i in idx],
                    max_new_tokens=max(limits[i] for i in idx),
                    batch_size=len(idx),
                    progress=False,
                )
                rows = [truncate_output(r, limits[i], self.tok) for r, i in zip(rows, idx, strict=True)]
            else:
                users = [conversations[i][-1]["content"] for i in idx]
                rows = sampler.generate(users, [0] * len(idx), [limits[i] for i in idx], do_sample=False)
            for i, row in zip(idx, rows, strict=True):
                out[i] = row
        return out  # type: ignore[return-value]
