"""Quality filters for candidate paraphrases.

Each check returns a reason code; a candidate is accepted only with no reasons. The codes are stable
(they key the rejection counts in rephrase_report.json and the tests):

- empty, too_short, too_long: length bounds (absolute chars and ratio to the original)
- same_as_original, near_original: identical after normalisation, or above the similarity thresholds
- near_accepted: too close to a paraphrase of the same source that was already accepted
- lost_number, lost_date, lost_entity: a number/percentage/amount word, month, or regulatory entity of
  the original is missing (entity = acronym, configured name, or Capitalised multi-word name)
- added_number: introduces a number that is not in the original (a hallucinated fact)
- answer_leak: introduces a number, or many content words, taken from the reference answer
- not_question: does not read as a question (no '?', no interrogative/imperative opening)
- question_type_changed: a wh-question became a yes/no question or the reverse ("How did RBI cut the
  CRR?" -> "Did RBI cut the CRR?"), or a who/when/where/why appeared ("What was the final tranche?" ->
  "Who decided the final tranche?"): it no longer asks for the same thing
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rbiqa import textsim
from rbiqa.rephrase import text as T

REASONS = (
    "empty",
    "too_short",
    "too_long",
    "same_as_original",
    "near_original",
    "near_accepted",
    "lost_number",
    "lost_date",
    "lost_entity",
    "added_number",
    "answer_leak",
    "not_question",
    "question_type_changed",
)

WH_WORDS = frozenset("what which who whom whose when where why how".split())
ANSWER_TYPE_WH = frozenset("who whom whose when where why".split())
YES_NO_OPENERS = frozenset(
    "is are was were can could does do did should shall will would may must has have had".split()
)


def question_type(text: str) -> str | None:
    """'wh' if any wh-word occurs, 'yesno' if it opens with an auxiliary, else None (imperative etc.)."""
    ws = textsim.canon_words(text)
    if WH_WORDS & set(ws):
        return "wh"
    if ws and ws[0] in YES_NO_OPENERS:
        return "yesno"
    return None


DEFAULT_QUESTION_OPENERS = (
    "what", "which", "who", "whom", "whose", "when", "where", "why", "how", "is", "are", "was", "were",
    "can", "could", "does", "do", "did", "should", "shall", "will", "would", "may", "must", "has", "have",
    "under", "in", "for", "to", "by", "within", "according", "explain", "describe", "list", "state",
    "outline", "name", "define", "identify", "give",
)  # fmt: skip


@dataclass(frozen=True)
class FilterConfig:
    min_chars: int = 12
    max_chars: int = 400
    min_len_ratio: float = 0.5  # paraphrase length / original length
    max_len_ratio: float = 2.0
    max_edit_similarity: float = 0.92  # difflib ratio on normalised text; >= this is "near-identical"
    max_jaccard: float = 0.9  # word-set Jaccard; >= this is "near-identical" (e.g. a mere reordering)
    check_capitalised_phrases: bool = True
    entities: tuple[str, ...] = ()
    entity_aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    question_openers: tuple[str, ...] = DEFAULT_QUESTION_OPENERS
    leak_min_new_words: int = 3  # new content words from the answer needed to call it a leak ...
    leak_min_frac: float = 0.5  # ... and their share of all new content words

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> FilterConfig:
        cfg = dict(cfg)
        aliases = {str(k): tuple(v) for k, v in dict(cfg.pop("entity_aliases", {}) or {}).items()}
        for key in ("entities", "question_openers"):
            if key in cfg:
                cfg[key] = tuple(cfg[key])
        unknown = set(cfg) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown rephrase.filters keys: {sorted(unknown)}")
        return cls(entity_aliases=aliases, **cfg)


_PREFIX = re.compile(
    r"^\s*(?:(?:rephrased|reworded|rewritten|new|paraphrased)?\s*(?:question|version|rephrasing|rewrite)\s*"
    r"\d*\s*[:\-–]|[qr]\s*[:.]|\d+\s*[.)]|[-*•])\s*",
    re.I,
)


def extract_candidate(raw: str) -> str:
    """First non-empty line of a generation, without list markers, 'Rephrased question:' labels, or
    wrapping quotes. Anything beyond this is the filters' job, not the cleaner's."""
    for line in (raw or "").splitlines():
        line = line.strip()
        if not line:
            continue
        for _ in range(2):
            line = _PREFIX.sub("", line, count=1).strip()
        if len(line) >= 2 and line[0] in "\"'“‘" and line[-1] in "\"'”’":
            line = line[1:-1].strip()
        return line
    return ""


class ParaphraseFilter:
    def __init__(self, cfg: FilterConfig):
        self.cfg = cfg
        self._openers = {w.casefold() for w in cfg.question_openers}

    def similar(self, a: str, b: str) -> bool:
        return (
            textsim.edit_similarity(a, b) >= self.cfg.max_edit_similarity
            or textsim.jaccard(textsim.canon_words(a), textsim.canon_words(b)) >= self.cfg.max_jaccard
        )

    def _entities(self, original: str) -> set[str]:
        found = T.acronyms(original)
        found |= {e for e in self.cfg.entities if T.has_entity(original, e, {})}
        if self.cfg.check_capitalised_phrases:
            found |= T.capitalised_phrases(original, skip_first=self._openers)
        # a configured name that covers an acronym (e.g. "Reserve Bank of India" vs its "RBI") is enough
        return found

    def check(
        self, candidate: str, original: str, answer: str = "", accepted: Sequence[str] = ()
    ) -> list[str]:
        """Reason codes why `candidate` is not an acceptable paraphrase of `original` (empty = accept)."""
        c = self.cfg
        cand = candidate.strip()
        if not cand:
            return ["empty"]
        reasons: list[str] = []
        n, n0 = len(cand), max(len(original.strip()), 1)
        if n < c.min_chars or n / n0 < c.min_len_ratio:
            reasons.append("too_short")
        if n > c.max_chars or n / n0 > c.max_len_ratio:
            reasons.append("too_long")
        if textsim.canon(cand) == textsim.canon(original):
            reasons.append("same_as_original")
        elif self.similar(cand, original):
            reasons.append("near_original")
        if any(textsim.canon(cand) == textsim.canon(a) or self.similar(cand, a) for a in accepted):
            reasons.append("near_accepted")

        num_o, num_c = T.numbers(original), T.numbers(cand)
        if not num_o <= num_c or not T.magnitudes(original) <= T.magnitudes(cand):
            reasons.append("lost_number")
        if not T.months(original) <= T.months(cand):
            reasons.append("lost_date")
        if any(not T.has_entity(cand, e, c.entity_aliases) for e in self._entities(original)):
            reasons.append("lost_entity")

        new_nums = num_c - num_o
        num_a = T.numbers(answer) if answer else set()
        leaked = bool(new_nums & num_a)
        if new_nums - num_a:
            reasons.append("added_number")
        if answer and not leaked:
            new_words = T.content_words(cand) - T.content_words(original)
            from_answer = new_words & T.content_words(answer)
            leaked = len(from_answer) >= c.leak_min_new_words and (
                len(from_answer) / max(len(new_words), 1) >= c.leak_min_frac
            )
        if leaked:
            reasons.append("answer_leak")

        first = textsim.canon_words(cand)[:1]
        if not cand.rstrip().endswith("?") and not (first and first[0] in self._openers):
            reasons.append("not_question")
        elif re.match(r"^\s*(yes|no|answer)\b", cand, re.I):
            reasons.append("not_question")
        else:
            qt_o, qt_c = question_type(original), question_type(cand)
            # a new who/when/where/why asks for a person, time, place or reason the original did not
            new_wh = (set(textsim.canon_words(cand)) & ANSWER_TYPE_WH) - set(textsim.canon_words(original))
            if (qt_o and qt_c and qt_o != qt_c) or new_wh:
                reasons.append("question_type_changed")
        return reasons


def dedupe_reasons(reasons: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(reasons))
