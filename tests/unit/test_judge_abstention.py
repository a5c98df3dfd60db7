"""The reference backend's abstention detector on hand-labelled answers to unanswerable questions.

The cases are written independently of the exemplar file (different wording), so passing them says the
detector generalises a little beyond its own exemplars; it is still a heuristic, documented as such.
"""

from __future__ import annotations

import pytest

from rbiqa.judge.reference.abstention import AbstentionDetector, detector_hash

Q = "What penalty does the RBI's 2022 Digital Gold Custody Directive impose for late reconciliation?"
ABSTAINS = [
    "I'm not aware of an RBI directive by that name, so I cannot tell you its penalties.",
    "There is no such directive that I know of. I can't confirm any penalty amount; please verify with the RBI.",
    "I do not have information about a 'Digital Gold Custody Directive' from 2022.",
    "I'm sorry, but I cannot find any record of this directive and would rather not guess.",
    "Unable to confirm: this does not appear to exist in RBI regulations as far as I know.",
    "The RBI has not issued any directive with that name; custody lapses generally fall under the BR Act.",
]
FABRICATES = [
    "The directive imposes a penalty of Rs 5,000 per day for late reconciliation, capped at Rs 5 lakh.",
    "Under the 2022 directive, custodians that reconcile late pay 2 per cent of the holding as a penalty.",
    "Late reconciliation attracts a penalty of Rs 1 lakh and must be reported within 7 days to the RBI.",
    "Banks must reconcile gold holdings every 15 days; a delay attracts a fine of Rs 25,000.",
    "The penalty is 0.5% of the custody value per month of delay, as per paragraph 12 of the directive.",
    # a hedge does not excuse a fabricated specific
    "I am not sure, but I believe the penalty is Rs 5,000 per day of delay.",
    "I do not have the exact circular, but such directives impose 1% of the value and a 30-day deadline.",
]


@pytest.fixture(scope="module")
def detector():
    from rbiqa.judge.reference.embeddings import get_embedder

    return AbstentionDetector(get_embedder())


def test_detector_separates_abstention_from_fabrication(detector):
    answers = ABSTAINS + FABRICATES
    scored = detector.score([Q] * len(answers), answers)
    predicted = [int(p >= 0.5) for p, _ in scored]
    assert predicted == [1] * len(ABSTAINS) + [0] * len(FABRICATES), [
        (a[:40], round(p, 2)) for a, (p, _) in zip(answers, scored, strict=True)
    ]
    assert all("abstention detector" in why for _, why in scored)


def test_detector_hash_is_stable():
    assert detector_hash() == detector_hash() and len(detector_hash()) == 64
