"""A chat prompt plus an assistant completion as token ids with a completion mask.

Training trains on exactly these tokens (the answer and the end-of-turn token, rendered with the model's
own chat template), and the generate stage scores a reference answer with them (its teacher-forced
loss), so the two agree on what "the answer's tokens" are.

Why prompt/completion strings and not `messages` with `assistant_only_loss`: TRL needs `{% generation %}`
markers in the chat template for assistant masks, and SmolLM2's template has none (TRL only patches a
fixed list of templates). Rendering the prompt with `add_generation_prompt=True` and making the
completion `answer + <end-of-turn>` works with any template and teaches the model to stop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rbiqa.io import InputError

Messages = list[dict[str, str]]


def end_of_turn(tokenizer) -> str:
    """The token the chat template closes an assistant turn with, checked against the template itself."""
    eot = tokenizer.eos_token
    probe = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "ANSWER-PROBE"}]
    rendered = tokenizer.apply_chat_template(probe, tokenize=False)
    if f"ANSWER-PROBE{eot}" not in rendered:
        raise InputError(
            f"the chat template does not close the assistant turn with eos {eot!r}: {rendered!r}; "
            "completion-only training would not teach the model to stop"
        )
    return eot


def prompt_completion_pairs(
    tokenizer, conversations: Sequence[Messages], completions: Sequence[str]
) -> list[dict[str, str]]:
    """{"prompt": the rendered conversation up to the assistant turn, "completion": text + end-of-turn}."""
    eot = end_of_turn(tokenizer)
    bos = tokenizer.bos_token
    # A tokenizer that prepends BOS to plain text would double a BOS the template already renders.
    adds_bos = (
        bos is not None
        and tokenizer("a")["input_ids"] != tokenizer("a", add_special_tokens=False)["input_ids"]
    )
    out = []
    for conv, text in zip(conversations, completions, strict=True):
        prompt = tokenizer.apply_chat_template(list(conv), tokenize=False, add_generation_prompt=True)
        if adds_bos and prompt.startswith(bos):
            prompt = prompt[len(bos) :]
        out.append({"prompt": prompt, "completion": text.strip() + eot})
    return out


def tokenize(pairs: list[dict[str, Any]], tokenizer, max_len: int) -> tuple[list[dict[str, Any]], int]:
    """Token ids plus a completion mask, truncated to max_len (keep the start); other keys of each pair
    (row_id, ...) are kept.

    Tokenizing here rather than in TRL lets padding-free batches (where TRL enforces no max_length)
    respect max_seq_len too. TRL turns `completion_mask` into labels (-100 on the prompt). Returns
    the rows and how many were truncated; rows left with no completion token are dropped.
    """
    out, n_truncated = [], 0
    for p in pairs:
        prompt_ids = tokenizer(p["prompt"], add_special_tokens=False)["input_ids"]
        ids = tokenizer(p["prompt"] + p["completion"], add_special_tokens=False)["input_ids"]
        # the completion starts where the two tokenizations diverge (tokens can merge across the seam)
        n_prompt = next(
            (i for i, (a, b) in enumerate(zip(prompt_ids, ids, strict=False)) if a != b),
            min(len(prompt_ids), len(ids)),
        )
        mask = [0] * n_prompt + [1] * (len(ids) - n_prompt)
        if len(ids) > max_len:
            n_truncated += 1
            ids, mask = ids[:max_len], mask[:max_len]
        if 1 in mask:
            extra = {k: v for k, v in p.items() if k not in ("prompt", "completion")}
            out.append({"input_ids": ids, "completion_mask": mask, **extra})
    return out, n_truncated
