"""Tab. humanlabels and its macros: every judge against the human labels of this run (rbiqa.judge.labels).

Read from metrics/judge_agreement.json (`human_labels`, passed through by rbiqa.stats.agreement from
results/judge/agreement.json). With no labels the table says so and \\ifHasHumanLabels is false, so the
judge-validity section prints how to collect them instead.
"""

from __future__ import annotations

from rbiqa.figures.data import Metrics
from rbiqa.figures.tables import tabular
from rbiqa.figures.texfmt import NA, escape, integer, number, pct_plain

SMALL_MARK = r"\textsuperscript{*}"
START = r"\texttt{python -m rbiqa.judge.labels export}"


def human_labels(m: Metrics) -> dict:
    return (m["judge_agreement"] or {}).get("human_labels") or {}


def _judge_names(comparisons: list[dict]) -> dict[str, str]:
    """Backend names where they are unambiguous (the model id is long), else backend:model."""
    raters = sorted({c["rater"] for c in comparisons})
    backends = [r.split(":", 1)[0] for r in raters]
    return {r: (b if backends.count(b) == 1 else r) for r, b in zip(raters, backends, strict=True)}


def table(m: Metrics, decimals: int) -> str:
    hl = human_labels(m)
    comps = hl.get("comparisons") or []
    header = [
        "Judge",
        "Eval set",
        "verdict",
        "$n$",
        "questions",
        r"$\kappa$",
        r"\CILevel{} CI",
        r"agreement (\%)",
        r"judge / human positive (\%)",
    ]
    names = _judge_names(comps)
    rows = []
    for c in comps:
        defined = c.get("kappa_defined", True)
        ci = c.get("kappa_ci") or [None, None]
        rows.append(
            [
                rf"\texttt{{{escape(names[c['rater']])}}}",
                rf"\texttt{{{escape(c['eval_set'])}}}" if c["scope"] == "eval_set" else escape(c["eval_set"]),
                escape(c["judge_kind"]),
                integer(c["n"]) + (SMALL_MARK if c.get("small_n") else ""),
                integer(c.get("n_clusters")),
                number(c["kappa"]) if defined else "--",
                f"[{number(ci[0])}, {number(ci[1])}]" if defined and ci[0] is not None else "--",
                pct_plain(c.get("accuracy"), decimals),
                f"{pct_plain(c.get('positive_rate_other'), decimals)} / "
                f"{pct_plain(c.get('positive_rate_reference'), decimals)}",
            ]
        )
    if not comps:
        why = (
            "no human labels have been collected for this run; start with " + START
            if not hl.get("n_labels")
            else "no labelled answer was scored by a judge of this run"
        )
        rows = [[rf"\multicolumn{{{len(header)}}}{{p{{0.9\linewidth}}}}{{\emph{{{why}.}}}}"]]
    files = ", ".join(rf"\texttt{{{escape(f)}}}" for f in hl.get("label_files") or []) or NA
    caption = (
        r"Every judge against human labels of this run's answers (a blinded sample, stratified by eval set "
        r"and arm), per eval set and pooled over the answerable sets. On \texttt{unanswerable} the verdict "
        r"compared is the judge's abstention verdict. Cohen's $\kappa$ with a cluster bootstrap interval "
        r"(resampling source questions); $n$ counts labelled answers the judge scored."
        + rf" {SMALL_MARK} fewer than {integer(hl.get('min_n'))} items: the interval is wide."
        + r" A $\kappa$ is not defined (--) when both raters gave one and the same verdict throughout."
        + rf" Labels: {files}"
        + (
            rf"; {integer(hl['n_stale'])} labels of answers that changed since were left out"
            if hl.get("n_stale")
            else ""
        )
        + "."
    )
    return tabular(header, rows, "lllrrrcrr", caption, "tab:humanlabels")


def add_macros(book, m: Metrics) -> None:
    hl = human_labels(m)
    comps = hl.get("comparisons") or []
    book.flag("HasHumanLabels", bool(comps))
    # labels exist but none is of an answer a judge of this run scored (another run's, or regenerated)
    book.flag("HumanLabelsUnmatched", bool(hl.get("n_labels")) and not comps)
    book.add("HumanLabelN", integer(hl.get("n_labels")) if hl else NA)
    book.add("HumanLabelMinN", integer(hl.get("min_n")) if hl else NA)
    book.add("HumanLabelStale", integer(hl.get("n_stale", 0)) if hl else NA)
    book.add("HumanLabelStart", START)
