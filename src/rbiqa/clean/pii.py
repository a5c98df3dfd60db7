"""PII detection with Presidio pattern recognizers only: no spaCy model, no network.

Presidio's AnalyzerEngine normally loads a spaCy pipeline for NER and context words. Here it runs on its
NoOpNlpEngine with a registry holding only pattern/checksum recognizers: Presidio's own for e-mail,
phone, credit card (Luhn), IBAN (mod-97), IP, and India's Aadhaar (Verhoeff), PAN, passport, voter ID
(EPIC) and GSTIN; plus, written here, the GSTIN check character (Presidio checks only its structure), UPI
IDs and honorific-led person names. Without NLP
context words, weak patterns keep their base score, so thresholds are per entity (config).

tldextract (used by the e-mail validator) would download the public-suffix list on first use; the e-mail
recognizer here uses an extractor pinned to the snapshot bundled with tldextract, so nothing touches the
network.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer, RecognizerRegistry, RecognizerResult
from presidio_analyzer.nlp_engine import NoOpNlpEngine
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    InAadhaarRecognizer,
    InGstinRecognizer,
    InPanRecognizer,
    InPassportRecognizer,
    InVoterRecognizer,
    IpRecognizer,
    PhoneRecognizer,
)

Policy = Literal["redact", "drop", "flag"]
POLICIES = ("redact", "drop", "flag")


@lru_cache(maxsize=1)
def offline_tld_extractor():
    import tldextract

    # no suffix-list URLs and no cache dir: the bundled snapshot only, never a download
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)


class OfflineEmailRecognizer(EmailRecognizer):
    """Presidio's e-mail recognizer with the TLD check done against the bundled suffix snapshot."""

    def validate_result(self, pattern_text: str) -> bool:
        return offline_tld_extractor()(pattern_text).fqdn != ""


class InGstinChecksumRecognizer(InGstinRecognizer):
    """Presidio's GSTIN recognizer checks the structure only; this adds the GSTIN check character
    (a Luhn mod-36 over the first 14 characters), so a mistyped or invented GSTIN is not a hit."""

    ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"

    @classmethod
    def check_char(cls, first14: str) -> str:
        total = 0
        for i, ch in enumerate(first14.upper()):
            prod = cls.ALPHABET.index(ch) * (2 if i % 2 else 1)
            total += prod // 36 + prod % 36
        return cls.ALPHABET[(36 - total % 36) % 36]

    def validate_result(self, pattern_text: str) -> bool:
        gstin = self._sanitize_value(pattern_text)
        if not super().validate_result(pattern_text) or len(gstin) != 15:
            return False
        try:
            return self.check_char(gstin[:14]) == gstin[14].upper()
        except ValueError:  # a character outside 0-9A-Z
            return False


class InUpiRecognizer(PatternRecognizer):
    """UPI virtual payment address: `handle@psp`, where psp has no dot (unlike an e-mail domain).
    A known PSP suffix makes it certain; an unknown one keeps the pattern's moderate score."""

    KNOWN_PSPS = frozenset(
        "ybl ibl axl okaxis okhdfcbank okicici oksbi paytm apl upi sbi icici hdfcbank axisbank kotak "
        "jupiteraxis fbl freecharge airtel idfcbank pnb barodampay yapl waicici wahdfcbank waaxis".split()
    )

    def __init__(self) -> None:
        super().__init__(
            supported_entity="IN_UPI",
            patterns=[
                Pattern(
                    "UPI", r"(?<![\w.@-])[A-Za-z0-9][\w.-]{1,255}@[A-Za-z][A-Za-z0-9]{1,63}\b(?![.@-]\w)", 0.4
                )
            ],
            context=["upi", "vpa", "upi id", "pay"],
            supported_language="en",
        )

    def validate_result(self, pattern_text: str) -> bool | None:
        psp = pattern_text.rsplit("@", 1)[-1].lower()
        return True if psp in self.KNOWN_PSPS else None


class HonorificPersonRecognizer(PatternRecognizer):
    """Person names introduced by an honorific (Mr, Mrs, Ms, Dr, Shri, Smt, ...): a cheap, NER-free
    signal. Flag-only by default: public officials named in circulars are not private data."""

    def __init__(self) -> None:
        super().__init__(
            supported_entity="PERSON",
            patterns=[
                Pattern(
                    "HONORIFIC_NAME",
                    r"\b(?:Mr|Mrs|Ms|Miss|Dr|Shri|Smt|Sri|Kumari|Km)\.?\s+(?-i:[A-Z][a-z]+(?:\s+[A-Z][a-z]+){0,2})\b",
                    0.6,
                )
            ],
            supported_language="en",
        )


def build_recognizers() -> list[PatternRecognizer]:
    return [
        OfflineEmailRecognizer(),
        PhoneRecognizer(supported_regions=("IN", "US", "GB")),
        CreditCardRecognizer(),
        IbanRecognizer(),
        IpRecognizer(),
        InAadhaarRecognizer(),
        InPanRecognizer(),
        InPassportRecognizer(),
        InVoterRecognizer(),
        InGstinChecksumRecognizer(),
        InUpiRecognizer(),
        HonorificPersonRecognizer(),
    ]


@lru_cache(maxsize=1)
def analyzer() -> AnalyzerEngine:
    # without NLP artifacts Presidio logs "Skipping context extraction" at INFO for every text
    logging.getLogger("presidio-analyzer").setLevel(logging.WARNING)
    nlp = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}])
    nlp.load()
    registry = RecognizerRegistry(supported_languages=["en"])
    for rec in build_recognizers():
        registry.add_recognizer(rec)
    return AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=["en"])


@dataclass(frozen=True)
class PiiConfig:
    policy: Policy = "redact"
    entity_policy: Mapping[str, Policy] = field(default_factory=lambda: {"PERSON": "flag"})
    entities: tuple[str, ...] = (
        "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "IN_AADHAAR", "IN_PAN",
        "IN_PASSPORT", "IN_VOTER", "IN_GSTIN", "IN_UPI", "PERSON",
    )  # fmt: skip
    default_threshold: float = 0.5
    thresholds: Mapping[str, float] = field(default_factory=dict)
    fields: tuple[str, ...] = ("question", "answer")

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> PiiConfig:
        cfg = dict(cfg)
        unknown = set(cfg) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown clean.pii keys: {sorted(unknown)}")
        for key in ("entities", "fields"):
            if key in cfg:
                cfg[key] = tuple(cfg[key])
        out = cls(**cfg)
        for p in [out.policy, *out.entity_policy.values()]:
            if p not in POLICIES:
                raise ValueError(f"PII policy must be one of {POLICIES}, got {p!r}")
        return out

    def policy_for(self, entity: str) -> Policy:
        return self.entity_policy.get(entity, self.policy)

    def threshold_for(self, entity: str) -> float:
        return float(self.thresholds.get(entity, self.default_threshold))


def find_pii(text: str, cfg: PiiConfig) -> list[RecognizerResult]:
    """Findings above their entity's threshold, overlaps resolved (higher score, then longer span)."""
    if not text:
        return []
    hits = analyzer().analyze(text=text, language="en", entities=list(cfg.entities), score_threshold=0.0)
    hits = [h for h in hits if h.score >= cfg.threshold_for(h.entity_type)]
    hits.sort(key=lambda h: (-h.score, -(h.end - h.start), h.start))
    chosen: list[RecognizerResult] = []
    for h in hits:
        if all(h.end <= c.start or h.start >= c.end for c in chosen):
            chosen.append(h)
    return sorted(chosen, key=lambda h: h.start)


def redact(text: str, hits: Sequence[RecognizerResult]) -> str:
    for h in sorted(hits, key=lambda h: h.start, reverse=True):
        text = text[: h.start] + f"<{h.entity_type}>" + text[h.end :]
    return text


@dataclass
class PiiOutcome:
    action: Policy | None  # strongest action over the row's findings: drop > redact > flag; None = clean
    row: dict[str, Any]  # the row with redactions applied (always masked where an action was taken)
    findings: list[dict[str, Any]]  # {field, entity, start, end, score, action}: never the PII text


def scan_row(row: Mapping[str, Any], cfg: PiiConfig) -> PiiOutcome:
    out = dict(row)
    findings: list[dict[str, Any]] = []
    for f in cfg.fields:
        value = row.get(f)
        if not isinstance(value, str):
            continue
        hits = find_pii(value, cfg)
        findings += [
            {
                "field": f,
                "entity": h.entity_type,
                "start": h.start,
                "end": h.end,
                "score": round(h.score, 3),
                "action": cfg.policy_for(h.entity_type),
            }  # fmt: skip
            for h in hits
        ]
        masked = [h for h in hits if cfg.policy_for(h.entity_type) in ("redact", "drop")]
        if masked:
            out[f] = redact(value, masked)
    actions = {x["action"] for x in findings}
    action = next((a for a in ("drop", "redact", "flag") if a in actions), None)
    return PiiOutcome(action, out, findings)


def summarize(findings: Sequence[dict[str, Any]]) -> dict[str, int]:
    return dict(sorted(Counter(f"{x['entity']}:{x['action']}" for x in findings).items()))
