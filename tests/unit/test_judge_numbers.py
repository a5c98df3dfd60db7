"""Numeric fact normalisation: equal values in different spellings match, wrong ones conflict."""

import pytest

from rbiqa.judge.reference.numbers import Quantity, extract_quantities, quantity_scores


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("4.5 per cent", "4.5%"),
        ("25 basis points", "0.25 percent"),
        ("Rs 2 lakh", "₹2,00,000"),
        ("Rs. 5 crore", "INR 50000000"),
        ("13 June 2018", "June 13, 2018"),
        ("13/06/2018", "2018-06-13"),
        ("two years", "2 years"),
    ],
)
def test_equivalent_spellings_match(a, b):
    qa, qb = extract_quantities(a), extract_quantities(b)
    assert len(qa) == len(qb) == 1
    assert qa[0].matches(qb[0])


def test_different_values_and_units_do_not_match():
    assert not Quantity(4.5, "%").matches(Quantity(5.0, "%"))
    assert not Quantity(30, "day").matches(Quantity(30, "month"))
    assert Quantity(30, "").matches(Quantity(30, "day"))  # a bare number is compatible with any unit


def test_identifiers_are_not_quantities():
    assert extract_quantities("Section 49B of the Act") == []
    assert extract_quantities("circular RBI/2023-24/10") == []


def test_scores_recall_precision_and_conflicts():
    s = quantity_scores(
        reference="Reverse within 5 days; compensation Rs 100 per day.",
        answer="Reverse within 7 days; compensation ₹100 per day.",
        question="How fast must failed ATM transactions be reversed?",
    )
    assert s["num_recall"] == 0.5
    assert s["num_precision"] == 0.5
    assert s["num_conflicts"] == 1.0


def test_numbers_in_question_are_ignored():
    s = quantity_scores(
        reference="In 2020 the cap was 2%.", answer="The cap was 2%.", question="What was the cap in 2020?"
    )
    assert s["num_ref_count"] == 1.0 and s["num_recall"] == 1.0


def test_clock_times_normalise_and_durations_stay_durations():
    a = extract_quantities("presentation clearing from 17:00 to 17:30 hours")
    b = extract_quantities("presentation clearing from 5:00 PM to 5:30 PM")
    assert [q.unit for q in a] == ["time", "time"] and all(x.matches(y) for x, y in zip(a, b, strict=True))
    assert extract_quantities("within 24 hours") == [Quantity(24.0, "hour")]
