"""PII recognition without spaCy or network: every supported kind is caught, checksums matter, clean
regulatory text is untouched, and the redact/drop/flag policies do what they say."""

import pytest

from rbiqa.clean.pii import PiiConfig, find_pii, scan_row

CFG = PiiConfig(thresholds={"PHONE_NUMBER": 0.4, "IN_PASSPORT": 0.1, "IN_VOTER": 0.3, "IN_UPI": 0.4})

PLANTED = [
    ("Write to rahul.sharma@gmail.com for details.", "EMAIL_ADDRESS", "rahul.sharma@gmail.com"),
    ("Call the customer on +91 98765 43210 today.", "PHONE_NUMBER", "+91 98765 43210"),
    ("The card 4111 1111 1111 1111 was blocked.", "CREDIT_CARD", "4111 1111 1111 1111"),
    ("Remit to IBAN GB82 WEST 1234 5698 7654 32 now.", "IBAN_CODE", "GB82 WEST 1234 5698 7654 32"),
    ("Login came from 192.168.10.1 at night.", "IP_ADDRESS", "192.168.10.1"),
    ("Her Aadhaar number is 2345 6789 0124.", "IN_AADHAAR", "2345 6789 0124"),
    ("His PAN is ABCPE1234F.", "IN_PAN", "ABCPE1234F"),
    ("Passport J8369854 was presented.", "IN_PASSPORT", "J8369854"),
    ("Voter ID ABC1234567 was shown.", "IN_VOTER", "ABC1234567"),
    ("The supplier's GSTIN is 27AAPFU0939F1ZV.", "IN_GSTIN", "27AAPFU0939F1ZV"),
    ("Pay Rs 500 to ramesh.k@okaxis by UPI.", "IN_UPI", "ramesh.k@okaxis"),
    ("Mr. Ramesh Kumar complained to the bank.", "PERSON", "Mr. Ramesh Kumar"),
]


@pytest.mark.parametrize(("text", "entity", "span"), PLANTED)
def test_every_kind_is_caught(text, entity, span):
    hits = find_pii(text, CFG)
    assert [(h.entity_type, text[h.start : h.end]) for h in hits] == [(entity, span)]


@pytest.mark.parametrize(
    "text",
    [
        "Her Aadhaar number is 2345 6789 0123.",  # 12 digits, wrong Verhoeff check digit
        "Reference 234567890123 of the circular.",  # bare 12 digits, invalid checksum
        "The card 4111 1111 1111 1112 was blocked.",  # fails Luhn
        "The supplier's GSTIN is 27AAPFU0939F1ZX.",  # wrong GSTIN check character
        "Write to someone@example.notatld for details.",  # no public suffix: not an e-mail
    ],
)
def test_invalid_checksums_are_not_pii(text):
    assert find_pii(text, CFG) == []


@pytest.mark.parametrize(
    "text",
    [
        "What is the CRR of 4% under the RBI circular dated 31 March 2024 for NDTL above Rs 1,00,000 crore?",
        "Under Section 35A of the Banking Regulation Act, 1949, can RBI issue directions to a UCB?",
        "A bank's gold loan of Rs 2,50,000 at 75% LTV: what is the maximum under the 2020 Master Direction?",
        "How many days (T+1) does a bank have to credit a failed IMPS transfer of Rs 10,000?",
    ],
)
def test_clean_regulatory_text_untouched(text):
    assert find_pii(text, CFG) == []
    out = scan_row({"question": text, "answer": text}, CFG)
    assert out.action is None and out.row == {"question": text, "answer": text} and out.findings == []


def test_policies():
    row = {"question": "Can Mr. Ramesh Kumar (PAN ABCPE1234F) open an account?", "answer": "Yes."}
    redacted = scan_row(row, CFG)
    assert redacted.action == "redact"
    assert redacted.row["question"] == "Can Mr. Ramesh Kumar (PAN <IN_PAN>) open an account?"
    assert {f["entity"]: f["action"] for f in redacted.findings} == {"PERSON": "flag", "IN_PAN": "redact"}
    assert all("ABCPE1234F" not in str(v) for f in redacted.findings for v in f.values())

    dropped = scan_row(row, PiiConfig(policy="drop", entity_policy={"PERSON": "flag"}))
    assert dropped.action == "drop" and "ABCPE1234F" not in dropped.row["question"]

    flagged = scan_row(row, PiiConfig(policy="flag", entity_policy={}))
    assert flagged.action == "flag" and flagged.row == row


def test_bad_policy_rejected():
    with pytest.raises(ValueError, match="policy"):
        PiiConfig.from_config({"policy": "delete"})
