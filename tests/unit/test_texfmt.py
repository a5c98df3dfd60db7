"""Macro names and number formats used by tables, numbers.tex and the PDF check."""

from __future__ import annotations

import pytest

from rbiqa.figures.numbers import NumberBook
from rbiqa.figures.texfmt import camel, escape, macro_name, pct, pct_ci, pp_ci, pvalue, signed_pp, to_plain


@pytest.mark.parametrize(
    "arm,expected",
    [
        ("base", "Base"),
        ("ft_k3", "FtKThree"),
        ("ft_lr5e-5", "FtLrFiveEMinusFive"),
        ("ft_ep0p5", "FtEpZeroPFive"),
        ("base_rag", "BaseRag"),
        ("ft_k3_s2", "FtKThreeSTwo"),
        ("test_unseen", "TestUnseen"),
    ],
)
def test_camel_is_letters_only(arm, expected):
    assert camel(arm) == expected


def test_every_paper_arm_gives_a_distinct_letters_only_name():
    from rbiqa.config import compose

    arms = {a for e in ("default", "tiny", "paper") for a in compose([f"experiment={e}"]).study.arms}
    names = {macro_name("Acc", a) for a in arms}
    assert len(names) == len(arms)
    assert all(n.isalpha() for n in names)


def test_number_book_rejects_conflicting_redefinition():
    book = NumberBook()
    book.add("AccBaseTestUnseen", "1.0\\%")
    book.add("AccBaseTestUnseen", "1.0\\%")  # same value: allowed (role alias of the same arm)
    with pytest.raises(ValueError, match="defined twice"):
        book.add("AccBaseTestUnseen", "2.0\\%")
    with pytest.raises(ValueError, match="letters only"):
        macro_name("_", "")


def test_formats():
    assert pct(0.576) == "57.6\\%"
    assert pct(None) == "n/a"
    assert signed_pp(0.1349) == "+13.5"
    assert signed_pp(-0.0621) == "\\ensuremath{-}6.2"
    assert signed_pp(0.0001) == "0.0"
    assert pct_ci(0.259, 0.43) == "[25.9\\%, 43.0\\%]"
    assert pp_ci(-0.062, 0.133) == "[\\ensuremath{-}6.2, +13.3]"
    assert pvalue(0.0166) == "$p=0.017$" and pvalue(1e-9) == "$p<0.001$"
    assert escape("a_b & 5%") == "a\\_b \\& 5\\%"
    assert to_plain(pp_ci(-0.062, 0.133)) == "[\u22126.2, +13.3]"
    assert to_plain(pct_ci(0.259, 0.43)) == "[25.9%, 43.0%]"
