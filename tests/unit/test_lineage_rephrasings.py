"""The lineage appendix reports how many rephrasings per question a fine-tuned arm really trained on."""

from __future__ import annotations

import pytest

from rbiqa.figures.lineage import NOT_RECORDED, mean_rephrasings


def test_mean_and_share_at_the_most():
    # 10 sources with 0, 30 with 1, 60 with 3 (JSON keys are strings in a manifest)
    assert mean_rephrasings({"0": 10, "1": 30, "3": 60}) == "2.10 (60% at 3)"
    assert mean_rephrasings({0: 4}) == "0.00 (100% at 0)"


@pytest.mark.parametrize("missing", [None, {}])
def test_absent_counts_are_not_invented(missing):
    assert mean_rephrasings(missing) == NOT_RECORDED
