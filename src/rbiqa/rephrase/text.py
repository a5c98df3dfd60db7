"""Fact extraction used by the paraphrase filters (their normalisation is rbiqa.textsim's `canon`).

A paraphrase may change wording but not facts: the numbers, percentages, dates and named regulatory
entities of the original must survive. Extraction is deliberately conservative (regexes plus an entity
list): a false "lost fact" costs one candidate, a missed one puts a wrong question into training.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from rbiqa.textsim import canon_words, nfkc

# "one" is left out: far more often a pronoun ("what does one need") than a number
NUMBER_WORDS = {
    "zero": "0", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
    "fifteen": "15", "twenty": "20", "thirty": "30", "forty": "40", "fifty": "50", "sixty": "60",
    "ninety": "90", "hundred": "100",
}  # fmt: skip
MONTHS = (
    "january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
    "november", "december",
)  # fmt: skip
# Indian and international magnitude words: "Rs 1 crore" -> "Rs 1 billion" changes the amount.
MAGNITUDES = ("lakh", "lakhs", "crore", "crores", "million", "billion", "trillion", "thousand")

STOPWORDS = frozenset(
    """a an the of to in on for by with at from as is are was were be been being do does did has have had
    what which who whom whose when where why how can could should would will shall may must might this that
    these those it its their there any all each per or and not no if than then under into about over such
    they them he she his her we our you your i me my s""".split()
)

_NUM = re.compile(r"(?<!\d)(\d+(?:[.,]\d+)*)")
_PCT = re.compile(r"(\d+(?:\.\d+)?)\s*%")
_ACRONYM = re.compile(r"\b([A-Z][A-Z0-9&]*[A-Z0-9])(?:s|es)?\b")


def content_words(text: str) -> set[str]:
    return {w for w in canon_words(text) if w not in STOPWORDS and len(w) > 2}


def _normalise_numbers(text: str) -> str:
    text = nfkc(text)
    text = re.sub(r"\bper\s*cent\b|\bpercent\b", "%", text, flags=re.I)
    return re.sub(
        r"\b(" + "|".join(NUMBER_WORDS) + r")\b", lambda m: NUMBER_WORDS[m.group(1).lower()], text, flags=re.I
    )


def numbers(text: str) -> set[str]:
    """Numbers with separators removed ("1,00,000" == "100000"), number words as digits, and
    percentages marked ("4%") so that "4%" -> "4" counts as a lost fact."""
    text = _normalise_numbers(text)
    out = {m.group(1).replace(",", "").rstrip(".") for m in _NUM.finditer(text)}
    out |= {f"{m.group(1)}%" for m in _PCT.finditer(text)}
    return {n for n in out if n}


def months(text: str) -> set[str]:
    found = set(canon_words(text)) & set(MONTHS)
    if "may" in found and not re.search(r"\bMay\b", text):
        found.discard("may")  # the modal verb, not the month
    return found


def magnitudes(text: str) -> set[str]:
    return {w.rstrip("s") for w in canon_words(text) if w in MAGNITUDES}


def acronyms(text: str) -> set[str]:
    """All-caps tokens (RBI, NBFCs -> NBFC, III of Basel III), at least two characters."""
    return {m.group(1) for m in _ACRONYM.finditer(nfkc(text)) if len(m.group(1)) >= 2}


def initials(phrase: str) -> str:
    return "".join(w[0] for w in phrase.split() if w[0].isupper())


def has_entity(text: str, entity: str, aliases: Mapping[str, Iterable[str]]) -> bool:
    """Whether `entity` (or one of its aliases, or for a multi-word name its initials) occurs in text."""
    forms = {entity, *aliases.get(entity, ())}
    if " " in entity and len(initials(entity)) >= 2:
        forms.add(initials(entity))
    folded = nfkc(text).casefold()
    for form in forms:
        if form.isupper() and " " not in form:
            if re.search(rf"\b{re.escape(form)}(?:s|es)?\b", nfkc(text)):
                return True
        elif re.search(rf"(?<!\w){re.escape(form.casefold())}(?:s|es)?(?!\w)", folded):
            return True
    return False


_CAP_RUN = re.compile(r"\b[A-Z][a-z]+(?:(?:\s+(?:of|and|for|on|the|in))*\s+[A-Z][a-z]+)+\b")


def capitalised_phrases(text: str, skip_first: Iterable[str]) -> set[str]:
    """Runs of two or more Capitalised words ("Small Finance Banks", "Reserve Bank of India"), minus a
    leading question word ("Which Small Finance Banks" -> "Small Finance Banks")."""
    skip = {w.casefold() for w in skip_first}
    out = set()
    for m in _CAP_RUN.finditer(nfkc(text)):
        parts = m.group(0).split()
        while parts and parts[0].casefold() in skip:
            parts = parts[1:]
        while parts and parts[-1].casefold() in STOPWORDS:
            parts = parts[:-1]
        if len([p for p in parts if p[0].isupper()]) >= 2:
            out.add(" ".join(parts))
    return out
