"""Chat messages for each arm kind.

Every arm starts from the same system prompt (cfg.generate.system_prompt, which training also uses) and
ends with the same user turn, the bare question, except that the rag arm wraps it with retrieved
passages. So base, fewshot and finetune prompts differ only by the inserted example turns, and a
fine-tuned model sees the exact prompt format it was trained on.
"""

from __future__ import annotations

from collections.abc import Sequence

from rbiqa.models import Messages


def clip(text: str, max_chars: int | None) -> str:
    if not max_chars or len(text) <= max_chars:
        return text
    return text[:max_chars].rstrip() + " …"


def base_messages(system_prompt: str, question: str) -> Messages:
    return [{"role": "system", "content": system_prompt}, {"role": "user", "content": question}]


def fewshot_messages(system_prompt: str, examples: Sequence[dict], question: str) -> Messages:
    """Examples go in as earlier user/assistant turns: the model imitates answers it 'gave' itself."""
    msgs: Messages = [{"role": "system", "content": system_prompt}]
    for ex in examples:
        msgs.append({"role": "user", "content": ex["question"]})
        msgs.append({"role": "assistant", "content": ex["answer"]})
    msgs.append({"role": "user", "content": question})
    return msgs


def rag_messages(
    system_prompt: str,
    passages: Sequence[dict],
    question: str,
    template: str,
    passage_template: str,
    empty_context: str,
    max_passage_chars: int | None,
) -> Messages:
    if passages:
        context = "\n\n".join(
            passage_template.format(
                rank=i, question=p["question"], answer=clip(p["answer"], max_passage_chars)
            )
            for i, p in enumerate(passages, 1)
        )
    else:
        context = empty_context
    user = template.format(context=context, question=question)
    return [{"role": "system", "content": system_prompt}, {"role": "user", "content": user}]
