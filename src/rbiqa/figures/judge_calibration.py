"""Tab. judgepermodel and its macros: the reference judge against its calibration labels, per answer model.

Read from metrics/judge_agreement.json (`per_model` and `holdout`, passed through by rbiqa.stats.agreement
from the reference judge's block). Pooled kappa can hide a judge that is lenient on one kind of answer
and strict on another; the gap between the judge's and the labels' accuracy per kind is what biases an
arm's accuracy, so the table shows it with its interval, for the nested CV and for the held-out slice.
"""

from __future__ import annotations

from rbiqa.figures.data import Metrics
from rbiqa.figures.tables import ci_cell, tabular
from rbiqa.figures.texfmt import NA, escape, integer, number, pct, pct_plain, signed_pp

ANSWERS = {"base": "base model", "finetuned": "fine-tuned model"}


def _blocks(m: Metrics) -> list[tuple[str, dict]]:
    ja = m["judge_agreement"] or {}
    out = []
    if ja.get("per_model"):
        out.append(("nested CV", ja["per_model"]))
    if (ja.get("holdout") or {}).get("per_model"):
        out.append(("held-out slice", ja["holdout"]["per_model"]))
    return out


def table(m: Metrics, decimals: int) -> str:
    header = [
        "Estimate",
        "Answers of the",
        "$n$",
        r"$\kappa$ [\CILevel{} CI]",
        r"judge (\%)",
        r"labels (\%)",
        r"gap (pp) [\CILevel{} CI]",
    ]
    rows = []
    for estimate, per in _blocks(m):
        for kind, s in sorted(per.items()):
            ci = s.get("kappa_ci") or [None, None]
            gap_ci = s.get("rate_gap_ci") or [None, None]
            rows.append(
                [
                    escape(estimate),
                    escape(ANSWERS.get(kind, kind)),
                    integer(s.get("n")),
                    f"{number(s.get('kappa'))} [{number(ci[0])}, {number(ci[1])}]",
                    pct_plain(s.get("positive_rate_other"), decimals),
                    pct_plain(s.get("positive_rate_reference"), decimals),
                    signed_pp(s.get("rate_gap"), decimals)
                    + ci_cell(gap_ci[0], gap_ci[1], decimals, signed=True),
                ]
            )
    if not rows:
        rows = [
            [
                rf"\multicolumn{{{len(header)}}}{{p{{0.9\linewidth}}}}{{\emph{{No per-model agreement: the "
                r"judge of this run has no labelled calibration answers.}}}}"
            ]
        ]
    caption = (
        r"The reference judge against the Gemini labels of its calibration answers, per model that wrote "
        r"the answer: out-of-fold verdicts of the nested, question-grouped cross-validation over the whole "
        r"calibration file, and the verdicts on a held-out fifth of the questions of a judge fitted on the "
        r"rest (no modelling choice looked at them). Judge / labels: share of answers called correct; "
        r"gap: judge minus labels, the bias the judge adds to an arm whose answers are like these. "
        r"Cluster bootstrap intervals over questions. The answer's model is used only here and in the "
        r"correction of Table~\ref{tab:judgeerrors}, never by the judge."
    )
    return tabular(header, rows, "llrcrrc", caption, "tab:judgepermodel")


def add_macros(book, m: Metrics, d: int) -> None:
    ja = m["judge_agreement"] or {}
    per, held = ja.get("per_model") or {}, ja.get("holdout") or {}
    book.flag("HasJudgePerModel", bool(per))
    for kind in ANSWERS:
        s = per.get(kind) or {}
        book.add(f"JudgeGap{kind.capitalize()}", signed_pp(s.get("rate_gap"), d) if s else NA)
        book.add(f"JudgeRate{kind.capitalize()}", pct(s.get("positive_rate_other"), d) if s else NA)
        book.add(f"JudgeLabelRate{kind.capitalize()}", pct(s.get("positive_rate_reference"), d) if s else NA)
        book.add(f"JudgeKappa{kind.capitalize()}", number(s.get("kappa")) if s else NA)
    ci = held.get("kappa_ci") or [None, None]
    book.flag("HasJudgeHoldout", bool(held))
    book.add("JudgeHoldoutKappa", number(held.get("kappa")) if held else NA)
    book.add(
        "JudgeHoldoutKappaCI", f"[{number(ci[0])}, {number(ci[1])}]" if held and ci[0] is not None else NA
    )
    book.add("JudgeHoldoutN", integer(held.get("n")) if held else NA)
