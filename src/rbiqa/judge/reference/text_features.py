"""Lexical evidence that an answer states the reference's facts: terms, names, hedges, refusals.

Gemini's strict rubric fails answers that miss a key fact, hedge instead of answering, or pad a
vague answer with generic advice. These cues are cheap and, together with the embedding similarity,
carry most of that signal; the logistic regression learns how much each one counts.
"""

from __future__ import annotations

import re

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

# Words that appear in almost every RBI question and answer and so say nothing about a specific fact.
DOMAIN_STOP = frozenset(
    {
        "rbi",
        "reserve",
        "bank",
        "banks",
        "india",
        "indian",
        "regulated",
        "entities",
        "entity",
        "also",
        "must",
        "shall",
        "may",
        "required",
        "per",
        "specific",
        "specified",
        "according",
        "guidelines",
        "circular",
    }
)
STOP = frozenset(ENGLISH_STOP_WORDS) | DOMAIN_STOP

_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9'-]*|\d+[A-Za-z]+")
_CAPITALISED = re.compile(r"\b(?:[A-Z]{2,}[A-Za-z0-9-]*|[A-Z][a-z]+(?:\s+(?:of\s+|&\s+)?[A-Z][a-z]+)+)\b")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\"'])|\n+")

HEDGE_CUES = (
    r"\bnot sure\b",
    r"\bI (?:do not|don't) have\b",
    r"\bI (?:am|'m) (?:not|unable)\b",
    r"\bunable to (?:provide|find|confirm)\b",
    r"\bcannot (?:provide|confirm|find)\b",
    r"\bno (?:specific )?(?:information|record|details)\b",
    r"\bconsult\b",
    r"\badvis(?:able|ed) to (?:refer|check|consult|contact|visit)\b",
    r"\brefer to (?:the )?(?:latest|official|relevant|most recent)\b",
    r"\bofficial website\b",
    r"\bmay (?:have )?(?:changed|vary|be updated)\b",
    r"\bas of my (?:last|knowledge)\b",
    r"\bknowledge cut-?off\b",
    r"\btypically\b",
    r"\bgenerally\b",
    r"\blikely\b",
    r"\bmight\b",
    r"\bI'm sorry\b",
    r"\bI apologi[sz]e\b",
)
REFUSAL_CUES = (
    r"\bI (?:do not|don't) have (?:access|information|specific|real-time|details)\b",
    r"\bI (?:cannot|can't|am unable to) (?:provide|answer|find|confirm|access)\b",
    r"\b(?:there is|I found) no (?:such|record|information|evidence)\b",
    r"\bI (?:am|'m) not aware\b",
    r"\b(?:does not|doesn't) (?:exist|appear to exist)\b",
    r"\bnot (?:able|possible) to (?:verify|confirm|provide)\b",
    r"\bI'm sorry\b",
)
_HEDGE = [re.compile(p, re.I) for p in HEDGE_CUES]
_REFUSAL = [re.compile(p, re.I) for p in REFUSAL_CUES]


def stem(word: str) -> str:
    """Truncation stemming: crude, but robust for matching 'apportioned' with 'apportionment'."""
    w = word.lower().strip("'-")
    return w[:6] if len(w) > 6 else w


def content_stems(text: str) -> set[str]:
    return {stem(t) for t in _TOKEN.findall(text) if t.lower() not in STOP and len(t) > 2}


def bigrams(text: str) -> set[tuple[str, str]]:
    toks = [stem(t) for t in _TOKEN.findall(text) if t.lower() not in STOP]
    return set(zip(toks, toks[1:], strict=False))


def capitalised_terms(text: str) -> set[str]:
    """Names, acronyms and titled phrases (e.g. 'NEFT', 'Central Registrar'): usually key facts."""
    terms = set()
    for m in _CAPITALISED.finditer(text):
        t = m.group(0)
        if t.lower() in STOP or t.split()[0].lower() in {"the", "this", "however", "for", "in"}:
            continue
        terms.add(t.lower())
    return terms


def split_sentences(text: str) -> list[str]:
    parts = [s.strip() for s in _SENTENCE.split(text or "") if s and s.strip()]
    return parts or [text.strip() or "."]


# Clause boundaries inside a reference sentence: a strict judge fails an answer that misses any one
# clause ("... for bulk deposits", "... in Form B"), which whole-text overlap averages away.
_CLAUSE = re.compile(r"[.;:]\s+|,\s+(?:and|or|while|whereas|but|which|who)?\s*|\s+(?:and|or)\s+")


def clause_coverage(question: str, reference: str, answer: str) -> dict[str, float]:
    """Share of each reference clause's new content words that the answer contains."""
    a, q = content_stems(answer), content_stems(question)
    covs = []
    for clause in _CLAUSE.split(reference):
        terms = content_stems(clause) - q
        if len(terms) >= 2:
            covs.append(len(terms & a) / len(terms))
    if not covs:
        return {"clause_cov_min": 1.0, "clause_cov_mean": 1.0, "clause_missed_share": 0.0}
    return {
        "clause_cov_min": min(covs),
        "clause_cov_mean": sum(covs) / len(covs),
        "clause_missed_share": sum(c < 0.5 for c in covs) / len(covs),
    }


def _ratio(hit: int, total: int) -> float:
    return hit / total if total else 1.0


def _term_recall(terms: set[str], answer_low: str, answer_stems: set[str]) -> float:
    hits = 0
    for t in terms:
        words = [stem(w) for w in t.split() if w not in STOP]
        if t in answer_low or (words and all(w in answer_stems for w in words)):
            hits += 1
    return _ratio(hits, len(terms))


def cue_count(patterns: list[re.Pattern], text: str) -> int:
    return sum(1 for p in patterns if p.search(text))


def hedge_count(text: str) -> int:
    return cue_count(_HEDGE, text)


def refusal_count(text: str) -> int:
    return cue_count(_REFUSAL, text)


def lexical_scores(question: str, reference: str, answer: str) -> dict[str, float]:
    q, r, a = content_stems(question), content_stems(reference), content_stems(answer)
    novel = r - q  # reference terms the question did not already give away
    a_low = answer.lower()
    ref_terms = capitalised_terms(reference) - capitalised_terms(question)
    ans_terms = capitalised_terms(answer) - capitalised_terms(question)
    rb, ab = bigrams(reference), bigrams(answer)
    return {
        "kw_recall": _ratio(len(r & a), len(r)),
        "kw_recall_novel": _ratio(len(novel & a), len(novel)),
        "kw_precision": _ratio(len(a & (r | q)), len(a)),
        "kw_novel_answer_share": _ratio(len(a - r - q), len(a)),
        "bigram_recall": _ratio(len(rb & ab), len(rb)),
        "term_recall": _term_recall(ref_terms, a_low, a),
        "term_precision": _term_recall(ans_terms, reference.lower(), r),
        "hedges": float(hedge_count(answer)),
        "refusal": float(refusal_count(answer) > 0),
        **clause_coverage(question, reference, answer),
    }
