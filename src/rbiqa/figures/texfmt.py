"""LaTeX formatting: escaping, number formats and letters-only macro names.

One formatter per kind of number, used by tables and macros alike, so a value prints identically in a
table, in a sentence and in the PDF test that reads it back.
"""

from __future__ import annotations

import math
import re

_DIGITS = ("Zero", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine")
_TEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}
NA = "n/a"


def escape(text: object) -> str:
    return "".join(_TEX_SPECIAL.get(c, c) for c in str(text))


def camel(token: str) -> str:
    """'ft_lr5e-5' -> 'FtLrFiveEMinusFive': letters only, so it can be part of a LaTeX macro name."""
    out = []
    for part in re.findall(r"[A-Za-z]+|\d|-|\.", token):
        if part.isdigit():
            out.append(_DIGITS[int(part)])
        elif part == "-":
            out.append("Minus")
        elif part == ".":
            out.append("Point")
        else:
            out.append(part[0].upper() + part[1:])
    return "".join(out)


def macro_name(*parts: str) -> str:
    name = "".join(camel(p) for p in parts)
    if not re.fullmatch(r"[A-Za-z]+", name):
        raise ValueError(f"macro name {name!r} from {parts} is not letters only")
    return name


def _bad(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def pct(x: float | None, decimals: int = 1) -> str:
    """0.576 -> '57.6\\%'."""
    return NA if _bad(x) else f"{100 * x:.{decimals}f}\\%"


def pct_plain(x: float | None, decimals: int = 1) -> str:
    """0.576 -> '57.6' (table cells, where the header carries the unit)."""
    return NA if _bad(x) else f"{100 * x:.{decimals}f}"


def signed_pp(x: float | None, decimals: int = 1) -> str:
    """A difference in percentage points with an explicit sign and a typographic minus."""
    if _bad(x):
        return NA
    v = round(100 * x, decimals)
    if v == 0:
        return f"{0:.{decimals}f}"
    return ("+" if v > 0 else r"\ensuremath{-}") + f"{abs(v):.{decimals}f}"


def pct_ci(lo: float | None, hi: float | None, decimals: int = 1) -> str:
    return NA if _bad(lo) or _bad(hi) else f"[{pct(lo, decimals)}, {pct(hi, decimals)}]"


def pp_ci(lo: float | None, hi: float | None, decimals: int = 1) -> str:
    return NA if _bad(lo) or _bad(hi) else f"[{signed_pp(lo, decimals)}, {signed_pp(hi, decimals)}]"


def pvalue(p: float | None, floor: float = 0.001) -> str:
    """Math-mode 'p = 0.012' or 'p < 0.001', so a sentence never reads 'p = <0.001'."""
    if _bad(p):
        return NA
    return f"$p<{floor:g}$" if p < floor else f"$p={p:.3f}$"


def pvalue_cell(p: float | None, floor: float = 0.001) -> str:
    if _bad(p):
        return "--"
    return f"$<${floor:g}" if p < floor else f"{p:.3f}"


def number(x: float | None, decimals: int = 2) -> str:
    if _bad(x):
        return NA
    v = round(x, decimals)
    return (r"\ensuremath{-}" if v < 0 else "") + f"{abs(v):.{decimals}f}"


def integer(x: int | None) -> str:
    return NA if x is None else f"{int(x):,}".replace(",", "{,}")


def arm_tex(arm: str) -> str:
    return rf"\texttt{{{escape(arm)}}}"


def to_plain(tex: str) -> str:
    """What a formatted value reads as in extracted PDF text (for the tests that read the PDF back)."""
    s = tex.replace(r"\ensuremath{-}", "\u2212").replace(r"\%", "%").replace("{,}", ",")
    s = s.replace("$", "").replace(r"\texttt", "")
    return re.sub(r"[{}]", "", s)
