"""Booktabs tables for results/tables/*.tex, each a complete float with caption and label.

Captions use the \\CILevel-style macros from numbers.tex, so no number is typed anywhere. Long tables
(paired comparisons, per-category) use longtable so the paper-scale arm list breaks across pages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rbiqa.figures.data import Metrics
from rbiqa.figures.texfmt import (
    arm_tex,
    escape,
    integer,
    number,
    pct_plain,
    pp_ci,
    pvalue_cell,
    signed_pp,
)


def _body(header: list[str], rows: list[list[str]]) -> str:
    """Table rows, or one spanning 'no rows' line so an empty table still compiles and says why."""
    if not rows:
        return rf"\multicolumn{{{len(header)}}}{{c}}{{\emph{{no rows: nothing of this kind ran}}}} \\"
    return "\n".join(" & ".join(r) + r" \\" for r in rows)


def tabular(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    colspec: str,
    caption: str,
    label: str,
    note: str = "",
) -> str:
    body = _body(header, rows)
    return "\n".join(
        [
            r"\begin{table}[htbp]",
            r"\centering\footnotesize\setlength{\tabcolsep}{4pt}",
            rf"\caption{{{caption}}}\label{{{label}}}",
            rf"\begin{{tabular}}{{{colspec}}}",
            r"\toprule",
            " & ".join(header) + r" \\",
            r"\midrule",
            body,
            r"\bottomrule",
            r"\end{tabular}",
            *([rf"\par\smallskip\parbox{{0.95\linewidth}}{{\footnotesize {note}}}"] if note else []),
            r"\end{table}",
            "",
        ]
    )


def longtable(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    colspec: str,
    caption: str,
    label: str,
    note: str = "",
) -> str:
    head = " & ".join(header) + r" \\"
    body = _body(header, rows)
    return "\n".join(
        [
            r"{\footnotesize\setlength{\tabcolsep}{4pt}",
            rf"\begin{{longtable}}{{{colspec}}}",
            rf"\caption{{{caption}}}\label{{{label}}} \\",
            r"\toprule",
            head,
            r"\midrule",
            r"\endfirsthead",
            r"\toprule",
            head,
            r"\midrule",
            r"\endhead",
            r"\bottomrule",
            r"\endfoot",
            body,
            *(
                [rf"\midrule \multicolumn{{{len(header)}}}{{p{{0.9\linewidth}}}}{{\footnotesize {note}}} \\"]
                if note
                else []
            ),
            r"\end{longtable}}",
            "",
        ]
    )


def ci_cell(lo: float | None, hi: float | None, decimals: int, signed: bool = False) -> str:
    """'[12.3, 24.3]' in scriptsize, the unit being in the column header."""
    if lo is None or hi is None:
        return ""
    f = signed_pp if signed else pct_plain
    return f" {{\\scriptsize[{f(lo, decimals)}, {f(hi, decimals)}]}}"


def ladder(m: Metrics, rungs: Sequence[str], decimals: int) -> str:
    """Tab. ladder: per arm, accuracy on each rung (Wilson CI) and the teacher-forced loss of the reference
    answers there (nats per token; lower = the arm finds the reference more likely)."""
    rl = m.sections.get("reference_loss") or {}
    nll = {(r["arm"], r["eval_set"]): r for r in rl.get("records", [])}
    rows = []
    for arm in m.arms:
        cells = [arm_tex(arm)]
        for e in rungs:
            r = m.accuracy(arm, e)
            cells.append(
                "--"
                if r is None or r["accuracy"] is None
                else pct_plain(r["accuracy"], decimals) + ci_cell(r["wilson_lo"], r["wilson_hi"], decimals)
            )
            n = nll.get((arm, e))
            cells.append(number(n["mean_nll"]) if n and n.get("mean_nll") is not None else "--")
        rows.append(cells)
    header = ["Arm"]
    for e in rungs:
        header += [rf"\texttt{{{escape(e)}}} (\%)", "loss"]
    return tabular(
        header,
        rows,
        "l" + "cr" * len(rungs),
        r"The ladder: judge accuracy (\%, Wilson \CILevel{} interval) on the trained questions asked verbatim, "
        r"the same facts in a held-out wording, and unseen questions; beside each, the teacher-forced loss "
        r"of the reference answers under the arm's own prompt (mean nats per answer token), which does not "
        r"depend on the judge.",
        "tab:ladder",
    )


def main_results(m: Metrics, decimals: int) -> str:
    sets = m.eval_sets
    rows = []
    for arm in m.arms:
        cells = [arm_tex(arm)]
        for e in sets:
            r = m.accuracy(arm, e)
            if r is None or r["accuracy"] is None:
                cells.append("--")
                continue
            cells.append(
                pct_plain(r["accuracy"], decimals) + ci_cell(r["wilson_lo"], r["wilson_hi"], decimals)
            )
        rows.append(cells)
    header = ["Arm", *[rf"\texttt{{{escape(e)}}}" for e in sets]]
    return tabular(
        header,
        rows,
        "l" + "c" * len(sets),
        r"Judge accuracy (\%) per arm and evaluation set, with Wilson \CILevel{} intervals. Missing judgments "
        r"are excluded from the denominators (counts in Table~\ref{tab:counts}).",
        "tab:main",
    )


def counts(m: Metrics) -> str:
    sets = m.eval_sets
    by = {(c["arm"], c["eval_set"]): c for c in m.summary["counts"]}
    rows = []
    for arm in m.arms:
        cells = [arm_tex(arm)]
        for e in sets:
            c = by.get((arm, e))
            cells.append(
                "--"
                if c is None
                else f"{integer(c['n_judged'])} / {integer(c['n_missing'])} / {integer(c['n_absent'])}"
            )
        rows.append(cells)
    header = ["Arm", *[rf"\texttt{{{escape(e)}}}" for e in sets]]
    return tabular(
        header,
        rows,
        "l" + "c" * len(sets),
        "Judged / missing / absent items per arm and evaluation set. Missing: the generation or the judge "
        "failed; absent: no judgment row. Neither is scored.",
        "tab:counts",
    )


def paired(m: Metrics, refs: Sequence[str], decimals: int) -> str:
    keep_refs = set(refs) | set(m.summary.get("ft_arms", []))  # ft-vs-ft contrasts always shown
    rows = []
    for r in m["paired"]["records"]:
        if r["ref"] not in keep_refs:
            continue
        if r.get("diff") is None:
            rows.append(
                [
                    arm_tex(r["arm"]),
                    arm_tex(r["ref"]),
                    rf"\texttt{{{escape(r['eval_set'])}}}",
                    integer(r["n_pairs"]),
                    "--",
                    "--",
                    "--",
                    "--",
                    "--",
                ]
            )
            continue
        rows.append(
            [
                arm_tex(r["arm"]),
                arm_tex(r["ref"]),
                rf"\texttt{{{escape(r['eval_set'])}}}",
                integer(r["n_pairs"]),
                signed_pp(r["diff"], decimals),
                pp_ci(r["diff_lo"], r["diff_hi"], decimals),
                pvalue_cell(r["mcnemar_p"]),
                f"{r['n01']}/{r['n10']}",
                number(r["phi"]) if r["phi"] is not None else "--",
            ]
        )
    header = [
        "Arm",
        "vs",
        "Eval set",
        "$n$",
        r"$\Delta$ (pp)",
        r"\CILevel{} CI (pp)",
        "McNemar $p$",
        r"$n_{01}/n_{10}$",
        r"$\phi$",
    ]
    return longtable(
        header,
        rows,
        "lllrrcrcr",
        r"Paired comparisons on items judged in both arms: difference in accuracy (arm minus reference) "
        r"with a cluster bootstrap CI (resampling source questions), exact McNemar test, discordant "
        r"counts ($n_{01}$: arm right, reference wrong) and the per-item correlation $\phi$.",
        "tab:paired",
    )


def per_category(m: Metrics, grouping: str, decimals: int) -> str:
    main = m.main_arm
    base = m.summary.get("base_arm")
    pc = m["per_category"]
    tests = [t for t in pc["tests"] if t["arm"] == main and t["ref"] == base and t["grouping"] == grouping]
    tests.sort(key=lambda t: (t["eval_set"], not t["tested"], -t["acc_arm"], t["level"]))
    rows = []
    for t in tests:
        flag = r"\textsuperscript{\dag}" if not t["tested"] else ""
        sig = r"\textsuperscript{*}" if t.get("significant_holm") else ""
        rows.append(
            [
                rf"\texttt{{{escape(t['eval_set'])}}}",
                escape(t["level"]) + flag,
                integer(t["n_pairs"]),
                pct_plain(t["acc_ref"], decimals),
                pct_plain(t["acc_arm"], decimals) + ci_cell(t["arm_wilson_lo"], t["arm_wilson_hi"], decimals),
                signed_pp(t["diff"], decimals),
                pvalue_cell(t["p_holm"]) + sig,
            ]
        )
    header = [
        "Eval set",
        escape(grouping.replace("_", " ")),
        "$n$",
        f"{arm_tex(base or 'base')} (\\%)",
        f"{arm_tex(main or 'main')} (\\%)",
        r"$\Delta$ (pp)",
        r"Holm $p$",
    ]
    return longtable(
        header,
        rows,
        "llrrlrr",
        rf"Accuracy of the main fine-tuned arm against the base model by {escape(grouping.replace('_', ' '))} "
        r"(items judged in both arms; Wilson interval for the fine-tuned arm). Levels are ranked by "
        r"fine-tuned accuracy; \dag{} marks levels with fewer than \CategoryMinN{} items, which are neither "
        r"ranked nor tested. Holm-adjusted exact McNemar $p$ within each evaluation set; * significant at "
        r"\AlphaLevel{}.",
        "tab:percat",
    )


def secondary(m: Metrics, decimals: int) -> str:
    hall = {r["arm"]: r for r in m["hallucination"].get("records", [])}
    hall_change = {r["arm"]: r for r in m["hallucination"].get("changes", [])}
    forget = {r["arm"]: r for r in m["forgetting"].get("records", [])}
    gap = {r["arm"]: r for r in m["generalisation_gap"].get("records", [])}
    oa = m.sections.get("over_abstention") or {}
    oa_sets = oa.get("eval_sets") or []
    # abstention on answerable questions, shown on the headline set (else the first set measured)
    oa_set = m.summary.get("headline_eval_set") if m.summary.get("headline_eval_set") in oa_sets else None
    oa_set = oa_set or next(iter(oa_sets), None)
    abst = {r["arm"]: r for r in oa.get("records", []) if r["eval_set"] == oa_set}
    rows = []
    for arm in m.arms:
        h, hc, f, g = hall.get(arm), hall_change.get(arm), forget.get(arm), gap.get(arm)
        a = abst.get(arm)
        rows.append(
            [
                arm_tex(arm),
                pct_plain(h["rate"], decimals) + ci_cell(h["wilson_lo"], h["wilson_hi"], decimals)
                if h and h.get("rate") is not None
                else "--",
                signed_pp(hc["change"], decimals) + ci_cell(hc["change_lo"], hc["change_hi"], decimals, True)
                if hc and hc.get("change") is not None
                else "--",
                pct_plain(a["rate"], decimals) + ci_cell(a["wilson_lo"], a["wilson_hi"], decimals)
                if a and a.get("rate") is not None
                else "--",
                signed_pp(f["diff"], decimals) + ci_cell(f["diff_lo"], f["diff_hi"], decimals, True)
                if f and f.get("diff") is not None
                else "--",
                signed_pp(g["gap"], decimals) + ci_cell(g["boot_lo"], g["boot_hi"], decimals, True)
                if g and g.get("gap") is not None
                else "--",
            ]
        )
    header = [
        "Arm",
        r"Hallucination (\%)",
        r"$\Delta$ halluc.\ vs base (pp)",
        rf"Abstains, \texttt{{{escape(oa_set or '--')}}} (\%)",
        r"$\Delta$ general vs base (pp)",
        r"Paraphrase $-$ unseen (pp)",
    ]
    return tabular(
        header,
        rows,
        "lccccc",
        r"Secondary outcomes with \CILevel{} intervals: hallucination rate on unanswerable questions "
        r"(1 minus abstention accuracy; Wilson) and its paired change against the base model; the share of "
        r"answers to answerable questions that abstain instead (offline abstention detector; Wilson); accuracy "
        r"change on general-knowledge probes (negative = forgetting; paired cluster bootstrap); and the "
        r"gap between held-out paraphrases of trained questions and unseen questions (independent "
        r"samples, cluster bootstrap).",
        "tab:secondary",
    )


def power(m: Metrics, decimals: int) -> str:
    main = m.main_arm
    rows = []
    for r in m["power"]["records"]:
        un = r["unpaired"]
        pr = next((p for p in r["paired"] if p["arm"] == main), None)
        rows.append(
            [
                rf"\texttt{{{escape(r['eval_set'])}}}",
                integer(un["n"]),
                pct_plain(un.get("p_base"), decimals),
                pct_plain(un.get("mdd"), decimals),
                pct_plain(pr["discordance"], decimals) if pr else "--",
                pct_plain(pr.get("mdd"), decimals) if pr else "--",
            ]
        )
    header = [
        "Eval set",
        "$n$",
        r"base acc.\ (\%)",
        r"MDD unpaired (pp)",
        r"discordance (\%)",
        rf"MDD paired, {arm_tex(main or 'main')} (pp)",
    ]
    return tabular(
        header,
        rows,
        "lrrrrr",
        r"Minimum detectable difference at \PowerTarget{} power and $\alpha=\AlphaLevel$ for the evaluation "
        r"sizes of this run: two independent proportions around the observed base accuracy (Cohen's $h$), "
        r"and McNemar on paired items with the observed discordance rate (Connor's approximation).",
        "tab:power",
    )


def seeds(m: Metrics, decimals: int) -> str:
    rows = []
    for r in m["seeds"].get("records", []):
        if r.get("flag"):
            continue
        rows.append(
            [
                arm_tex(r["arm"]),
                rf"\texttt{{{escape(r['eval_set'])}}}",
                integer(len(r["replicates"])),
                ", ".join(pct_plain(a, decimals) for a in r["accuracies"]),
                pct_plain(r["sd_between_seeds"], decimals),
                pct_plain(r["range"], decimals),
                pct_plain(r["mean_binomial_se"], decimals),
            ]
        )
    header = ["Arm", "Eval set", "seeds", r"accuracies (\%)", "SD (pp)", "range (pp)", "binomial SE (pp)"]
    return tabular(
        header,
        rows,
        "llrlrrr",
        "Between-seed variation of replicated training runs, next to the mean within-run binomial "
        "standard error.",
        "tab:seeds",
    )


def _value(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return escape(v)


def lineage_rows(facts: Mapping[str, Mapping[str, object]]) -> list[list[str]]:
    rows = []
    for stage, kv in facts.items():
        for i, (k, v) in enumerate(kv.items()):
            rows.append([escape(stage) if i == 0 else "", escape(k), rf"\texttt{{{_value(v)}}}"])
    return rows


def lineage_table(facts: Mapping[str, Mapping[str, object]]) -> str:
    return longtable(
        ["Stage", "Item", "Value"],
        lineage_rows(facts),
        "llp{0.55\\linewidth}",
        "Lineage of this report, read from the stage manifests (hashes truncated to 12 hex digits).",
        "tab:lineage",
    )


# ------------------------------------------------------------------ accuracy corrected for judge error

CLIP_MARK = r"\textsuperscript{\dag}"


def _corr_cell(value, lo, hi, decimals: int, signed: bool = False, clipped: bool = False) -> str:
    if value is None:
        return "--"
    f = signed_pp if signed else pct_plain
    return f(value, decimals) + (CLIP_MARK if clipped else "") + ci_cell(lo, hi, decimals, signed)


def judge_errors(m: Metrics, decimals: int) -> str:
    """Tab. judgeerrors: the reference judge's sensitivity and specificity per answer kind."""
    c = m.sections.get("corrected") or {}
    kinds = (c.get("provenance") or {}).get("answer_kinds", {})
    rows = []
    for r in c.get("error_rates", []):
        arm_kinds = ", ".join(k for k, v in kinds.items() if v == r["answer_kind"]) or "--"
        rows.append(
            [
                escape(r["answer_kind"]),
                escape(arm_kinds),
                integer(r["n"]),
                integer(r["n_pos"]),
                _corr_cell(r["sensitivity"], r["sens_lo"], r["sens_hi"], decimals),
                _corr_cell(r["specificity"], r["spec_lo"], r["spec_hi"], decimals),
                number(r["youden"]) if r["youden"] is not None else "--",
                pct_plain(r["frac_degenerate"], decimals),
            ]
        )
    header = [
        "Answers",
        "arm kinds",
        "$n$",
        "correct",
        r"Sensitivity (\%)",
        r"Specificity (\%)",
        r"$\mathit{Se}+\mathit{Sp}-1$",
        r"degenerate (\%)",
    ]
    prov = c.get("provenance") or {}
    caption = (
        r"Error rates of the judge on its calibration answers, per kind of answer, with cluster bootstrap "
        r"\CILevel{} intervals: sensitivity (correct answers it accepts) and specificity (wrong answers it "
        r"rejects), against the labels of "
        + escape(prov.get("calibration_labels") or "the reference standard")
        + r" (``correct'' counts the answers so labelled; a small count makes a wide interval). Degenerate: "
        r"bootstrap replicates where $\mathit{Se}+\mathit{Sp}\le 1$, in which the correction is undefined."
    )
    if not c.get("available"):
        msg = escape(c.get("reason") or "no calibration data")
        rows = [[rf"\multicolumn{{{len(header)}}}{{p{{0.9\linewidth}}}}{{\emph{{Not measured: {msg}.}}}}"]]
    return tabular(header, rows, "llrrcccr", caption, "tab:judgeerrors")


def corrected(m: Metrics, decimals: int) -> str:
    """Tab. corrected: raw and Rogan-Gladen-corrected accuracy per arm and eval set, and the paired
    difference from the base model before and after correction; clipped estimates marked."""
    c = m.sections.get("corrected") or {}
    base = m.summary.get("base_arm")
    header = [
        "Arm",
        "Eval set",
        "errors of",
        r"Raw (\%)",
        r"Corrected (\%)",
        r"$\Delta$ raw (pp)",
        r"$\Delta$ corrected (pp)",
    ]
    rows = []
    if not c.get("available"):
        msg = escape(c.get("reason") or "no calibration data")
        rows = [
            [
                rf"\multicolumn{{{len(header)}}}{{p{{0.9\linewidth}}}}{{\emph{{No correction available: {msg}.}}}}"
            ]
        ]
    else:
        pairs = {(p["arm"], p["eval_set"]): p for p in c.get("paired", []) if p["ref"] == base}
        by_set = {}
        for r in c.get("records", []):
            by_set.setdefault(r["eval_set"], []).append(r)
        for e, recs in by_set.items():
            for r in recs:
                p = pairs.get((r["arm"], e))
                raw = "--" if r["raw"] is None else _corr_cell(r["raw"], r["raw_lo"], r["raw_hi"], decimals)
                cor = _corr_cell(
                    r["corrected"], r["corrected_lo"], r["corrected_hi"], decimals, clipped=bool(r["clipped"])
                )
                d_raw = signed_pp(p["diff_raw"], decimals) if p and p.get("diff_raw") is not None else "--"
                d_cor = (
                    _corr_cell(
                        p["diff"],
                        p["diff_lo"],
                        p["diff_hi"],
                        decimals,
                        signed=True,
                        clipped=bool(p["clipped_arm"] or p["clipped_ref"]),
                    )
                    if p
                    else "--"
                )
                rows.append(
                    [
                        arm_tex(r["arm"]),
                        rf"\texttt{{{escape(e)}}}",
                        escape(r["answer_kind"]),
                        raw,
                        cor,
                        d_raw,
                        d_cor,
                    ]
                )
    skipped = c.get("skipped_eval_sets") or {}
    skip_note = "".join(
        rf" \texttt{{{escape(e)}}} is not corrected: {escape(why)}." for e, why in skipped.items()
    )
    prov = c.get("provenance") or {}
    transfer = (
        rf" The error rates were measured on answers of {escape(prov['calibration_answers'])} labelled by "
        rf"{escape(prov.get('calibration_labels') or 'the reference standard')} and are applied to the "
        rf"answers of {escape(prov.get('applied_to_model') or 'this run')}: the correction assumes the judge errs "
        r"on them as on calibration answers of the same kind."
        if c.get("available") and prov.get("calibration_answers")
        else ""
    )
    return longtable(
        header,
        rows,
        "lllcccc",
        r"Judge accuracy corrected for the judge's errors (Rogan--Gladen) beside the raw accuracy, and the "
        r"paired difference from the base model before and after correction, with \CILevel{} intervals; "
        r"\dag{} clipped.",
        "tab:corrected",
        r"Corrected: $(\mathrm{raw}+\mathit{Sp}-1)/(\mathit{Se}+\mathit{Sp}-1)$ with the error rates of the "
        r"arm's kind of answer (Table~\ref{tab:judgeerrors}). Intervals from a bootstrap that resamples both "
        r"the calibration questions and the evaluation items (by source question; the same resample for both "
        r"arms of a difference). \dag{} the estimate fell outside $[0, 100]$\% and was clipped (for a "
        r"difference: one of its two estimates was)." + transfer + skip_note,
    )
