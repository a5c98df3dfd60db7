"""Numeric facts (amounts, percentages, dates, durations) pulled out of free text and normalised.

RBI answers state the same fact in many spellings ("4.5 per cent" / "4.5%", "Rs 2 lakh" / "₹2,00,000",
"13 June 2018" / "June 13, 2018"). A strict judge fails an answer whose number is wrong, so the
reference judge compares numbers as (value, unit) pairs after normalising those spellings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MONTHS = {
    m: i
    for i, names in enumerate(
        [
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ],
        start=1,
    )
    for m in names
}
SCALE = {
    "thousand": 1e3,
    "lakh": 1e5,
    "lakhs": 1e5,
    "lac": 1e5,
    "lacs": 1e5,
    "crore": 1e7,
    "crores": 1e7,
    "cr": 1e7,
    "million": 1e6,
    "mn": 1e6,
    "billion": 1e9,
    "bn": 1e9,
    "trillion": 1e12,
}
WORD_NUM = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "fifteen": 15,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "ninety": 90,
    "hundred": 100,
}
DURATION = {
    "day": "day",
    "days": "day",
    "week": "week",
    "weeks": "week",
    "month": "month",
    "months": "month",
    "year": "years",
    "years": "years",
    "hour": "hour",
    "hours": "hour",
    "minute": "minute",
    "minutes": "minute",
}

_NUM = r"\d{1,3}(?:,\d{2,3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_MONTH = "|".join(sorted(MONTHS, key=len, reverse=True))
_DATE_DMY = re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({_MONTH})\.?,?\s+(\d{{4}})\b", re.I)
_DATE_MDY = re.compile(rf"\b({_MONTH})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})\b", re.I)
_DATE_MY = re.compile(rf"\b({_MONTH})\.?,?\s+(\d{{4}})\b", re.I)
_DATE_NUMERIC = re.compile(r"\b(\d{1,2})[./-](\d{1,2})[./-](\d{4})\b")
_DATE_ISO = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
# Clock times: "17:00", "17:00 hours", "5:00 PM", "5 pm" -> minutes after midnight.
_TIME = re.compile(
    r"\b(\d{1,2})(?:[:.](\d{2}))?\s*(a\.?m\.?|p\.?m\.?|hours|hrs)(?![a-z])|\b(\d{1,2}):(\d{2})\b", re.I
)
_WORDS = "|".join(WORD_NUM)
_QUANTITY = re.compile(
    rf"(?P<cur>₹|\brs\.?|\binr|\busd|\$)?\s*(?P<num>{_NUM}|\b(?:{_WORDS})\b)\s*"
    rf"(?P<scale>{'|'.join(SCALE)})?\b\s*(?P<unit>%|per\s*cent|percent|pc\b|bps|basis\s+points?|"
    rf"rupees|{'|'.join(DURATION)})?",
    re.I,
)
# Identifiers such as "Section 49B", "DBR.No.12" or "RBI/2023-24/10" carry digits but are names, not
# quantities: they are compared as terms by the keyword features instead.
_IDENTIFIER = re.compile(r"\b[A-Za-z]+[./-]?\d+[A-Za-z]+\b|\b\d+[A-Za-z]+\d*\b|\b[\w.]+/\d{4}-\d{2}/\d+\b")


@dataclass(frozen=True)
class Quantity:
    value: float
    unit: str  # "%", "inr", "date", "year", a duration unit, or "" for a bare count

    def matches(self, other: Quantity) -> bool:
        same_value = abs(self.value - other.value) <= 1e-6 * max(1.0, abs(other.value))
        return same_value and (self.unit == other.unit or "" in (self.unit, other.unit))


def _to_float(text: str) -> float:
    low = text.lower()
    if low in WORD_NUM:
        return float(WORD_NUM[low])
    return float(low.replace(",", ""))


def _date_value(year: int, month: int, day: int) -> float:
    return year * 10000 + month * 100 + day


def extract_quantities(text: str) -> list[Quantity]:
    """All numeric facts in `text`; a date is one quantity, not three numbers."""
    out: list[Quantity] = []
    spans: list[tuple[int, int]] = []

    def taken(m: re.Match) -> bool:
        return any(m.start() < e and m.end() > s for s, e in spans)

    for pat, order in ((_DATE_ISO, "ymd"), (_DATE_DMY, "dmy"), (_DATE_MDY, "mdy"), (_DATE_NUMERIC, "dmy")):
        for m in pat.finditer(text):
            if taken(m):
                continue
            g = dict(zip(order, m.groups(), strict=True))
            month = MONTHS.get(g["m"].lower().rstrip("."), None) if not g["m"].isdigit() else int(g["m"])
            if month is None or not 1 <= month <= 12:
                continue
            out.append(Quantity(_date_value(int(g["y"]), month, int(g["d"])), "date"))
            spans.append(m.span())
    for m in _DATE_MY.finditer(text):
        if not taken(m):
            out.append(Quantity(_date_value(int(m.group(2)), MONTHS[m.group(1).lower()], 0), "date"))
            spans.append(m.span())
    for m in _TIME.finditer(text):
        if taken(m):
            continue
        hour, minute, suffix = (
            (m.group(1), m.group(2), m.group(3)) if m.group(1) else (m.group(4), m.group(5), "")
        )
        h, mnt = int(hour), int(minute or 0)
        suffix = (suffix or "").lower().replace(".", "")
        if suffix == "pm" and h < 12:
            h += 12
        elif suffix == "am" and h == 12:
            h = 0
        if suffix in {"hours", "hrs"} and minute is None and h < 24 and not hour.startswith("0"):
            continue  # "24 hours" is a duration, not a time of day
        if h < 24 and mnt < 60:
            out.append(Quantity(h * 60 + mnt, "time"))
            spans.append(m.span())
    for m in _IDENTIFIER.finditer(text):
        spans.append(m.span())
    for m in _QUANTITY.finditer(text):
        if taken(m) or not m.group("num"):
            continue
        value = _to_float(m.group("num"))
        scale = (m.group("scale") or "").lower()
        unit_raw = re.sub(r"\s+", " ", (m.group("unit") or "").lower())
        if scale:
            value *= SCALE[scale]
        if unit_raw in {"%", "per cent", "percent", "pc"} or unit_raw.startswith("per"):
            unit = "%"
        elif unit_raw.startswith("b"):  # bps, basis points: compare in per cent
            unit, value = "%", value / 100
        elif m.group("cur") or unit_raw == "rupees":
            unit = "inr" if (m.group("cur") or "").strip().lower() not in {"$", "usd"} else "usd"
        elif unit_raw in DURATION:
            unit = DURATION[unit_raw]
        elif not scale and "." not in m.group("num") and 1900 <= value <= 2100:
            unit = "year"
        else:
            unit = ""
        out.append(Quantity(value, unit))
    return out


def quantity_scores(reference: str, answer: str, question: str = "") -> dict[str, float]:
    """Recall/precision of the reference's numbers, and conflicts (same unit, different value).

    Numbers already in the question are left out: echoing them says nothing about correctness.
    """
    q = extract_quantities(question)
    ref = [x for x in extract_quantities(reference) if not any(x.matches(y) for y in q)]
    ans = [x for x in extract_quantities(answer) if not any(x.matches(y) for y in q)]
    recall = sum(any(r.matches(a) for a in ans) for r in ref) / len(ref) if ref else 1.0
    precision = sum(any(a.matches(r) for r in ref) for a in ans) / len(ans) if ans else 1.0
    ref_units = {r.unit for r in ref if r.unit}
    conflicts = sum(1 for a in ans if a.unit in ref_units and not any(a.matches(r) for r in ref))
    return {
        "num_ref_count": float(len(ref)),
        "num_ans_count": float(len(ans)),
        "num_recall": recall,
        "num_precision": precision,
        "num_conflicts": float(conflicts),
    }
