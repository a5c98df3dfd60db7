"""What the Gemini stub answers in the paper rehearsal (`make rehearse-paper`): deterministic, offline,
and documented, so that a rehearsal's PDF is plainly a rehearsal and its numbers a rule's, not a model's.

Three kinds of request reach the stub, told apart by their prompt (src/rbiqa/rephrase/prompts and
src/rbiqa/judge/prompts):

- `rephrase` ("Rewrite the question below in {n} different ways ... Question: {question}"): n fixed
  rewordings of the question, each the question's own words in a polite frame, e.g. "Please tell me:
  can a bank ..., in short?". The frames are chosen to pass the stage's real filters (length ratio, edit
  similarity, Jaccard, entities, numbers, question type): they add no number, no wh-word and few content
  words, and at least 30% of the question's length (20 characters at least), so that a rewording is not
  "near-identical" to the original or to another rewording. Of the 348 questions of the sample corpus,
  340 get 4 accepted rewordings; the other 8 get fewer (near-identical or too long), and the stage's
  retry rounds and shortfall report handle them as they would a model's.
- `judge` (the rubric: <question>, <ground_truth>, <model_answer>): score 1 if the answer contains at
  least half of the ground truth's distinct content words (lower-cased words of 3+ letters, so that
  acronyms such as CRR count, or any number; minus stop words), else 0.
- `abstention` (the abstention rubric: <question>, <model_answer> and no ground truth): score 1 if the
  answer contains an abstention phrase ("not know", "not sure", "cannot confirm", "no such", "does not
  exist", ...), else 0.

Every reply is the JSON each client asks for ({"rephrasings": [...]} or {"score": 0|1, "reasoning": ...}).
"""

from __future__ import annotations

import html
import re
from typing import Any

# (prefix, suffix) frames; the question's own words go between them, the question mark after the suffix
FRAMES = (
    ("Please tell me: ", ", in short"),
    ("Could you tell me this: ", ", briefly"),
    ("I am curious: ", ", if you could say"),
    ("Kindly clarify: ", ", in a few words"),
    ("One more query: ", ", please"),
    ("Tell me, please: ", ", as things stand today"),
)
# appended, one by one, to a long question's rewording until it is far enough from the original
MORE = (", in plain words", ", for my own understanding", ", if it is not too much trouble")
ABSTAIN = re.compile(
    r"\b(not know|don't know|do not know|not sure|unsure|cannot confirm|can't confirm|unable to confirm|"
    r"no such|does not exist|doesn't exist|not aware|no information|cannot find|no record)\b",
    re.I,
)
STOP = frozenset(
    "the and for with that this from have has are was were will shall should would could can may must "
    "their there them they which what when where who whom whose how why into onto upon under over such "
    "than then also only any each every other more most some been being does did not no yes its it's "
    "about after before within without between per all but one two out use our you his her also".split()
)


def _block(prompt: str, tag: str) -> str | None:
    """The content of a prompt's `<tag>` block: the tag alone on its line, as the rubrics place it (the
    rubric's own text also names the tags, mid-sentence); the last such block, HTML-unescaped."""
    found = re.findall(rf"^<{tag}>\n(.*?)\n</{tag}>$", prompt, re.S | re.M)
    return html.unescape(found[-1]).strip() if found else None


def kind(prompt: str) -> str:
    """rephrase | judge | abstention | other: which client sent the prompt."""
    if re.search(r"^Question: ", prompt, re.M) and "different ways" in prompt:
        return "rephrase"
    if _block(prompt, "model_answer") is not None:
        return "judge" if _block(prompt, "ground_truth") is not None else "abstention"
    return "other"


def content_words(text: str) -> set[str]:
    words = re.findall(r"[a-z]+|\d+(?:[.,]\d+)*", text.lower())
    return {w for w in words if (w[0].isdigit() or len(w) >= 3) and w not in STOP}


def rewordings(question: str, n: int) -> list[str]:
    q = question.strip()
    body = q[:-1].rstrip() if q.endswith("?") else q
    # lower-case an ordinary first word ("Can", "What"), never an acronym or a name ("RBI", "NBFCs")
    first = body.split(" ", 1)[0]
    if first[:1].isupper() and first[1:].islower():
        body = body[0].lower() + body[1:]
    out = []
    for i in range(n):
        prefix, suffix = FRAMES[i % len(FRAMES)]
        for extra in MORE:  # a long question needs more new words not to be "near-identical"
            if len(prefix) + len(suffix) >= max(0.3 * len(q), 20):
                break
            suffix += extra
        out.append(f"{prefix}{body}{suffix}?")
    return out


def verdict(prompt: str) -> dict[str, Any]:
    answer = _block(prompt, "model_answer") or ""
    if kind(prompt) == "abstention":
        hit = ABSTAIN.search(answer)
        score = int(bool(hit))
        why = f"abstains ({hit.group(0)!r})" if hit else "no abstention phrase"
        return {"score": score, "reasoning": f"stub rule: {why}"}
    ref = content_words(_block(prompt, "ground_truth") or "")
    found = ref & content_words(answer)
    share = len(found) / len(ref) if ref else 0.0
    score = int(share >= 0.5)
    return {
        "score": score,
        "reasoning": f"stub rule: {len(found)}/{len(ref)} ground-truth words in the answer",
    }


def respond(prompt: str, body: dict) -> dict[str, Any]:
    k = kind(prompt)
    if k == "rephrase":
        question = re.search(r"^Question: (.+)$", prompt, re.M).group(1)
        m = re.search(r"in (\d+) different ways", prompt)
        return {"rephrasings": rewordings(question, int(m.group(1)) if m else 1)}
    if k in ("judge", "abstention"):
        return verdict(prompt)
    return {"error": "the rehearsal stub answers rephrase and judge prompts only"}
