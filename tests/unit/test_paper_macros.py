"""The paper's prose quotes numbers only through generated macros, and every macro it uses is defined.

numbers.tex is generated here from synthetic metrics for two arm lists: the full paper arm set (every
flag true) and a minimal one (base + one fine-tuned arm, no judge agreement), because the prose must
compile and stay true for whichever arms ran.
"""

from __future__ import annotations

import contextlib
import functools
import re
from pathlib import Path

import pytest

from rbiqa.figures import judge_calibration, tables
from rbiqa.figures.data import Metrics
from rbiqa.figures.numbers import build_numbers
from rbiqa.stats.agreement import read_agreement
from rbiqa.stats.corrected import correction_input
from rbiqa.stats.load import load_results
from rbiqa.stats.metrics import StatsSettings, compute_all
from rbiqa.study import arm_spec
from tests.fixtures.sample_results import PAPER_ARMS, write_sample_results

PAPER = Path(__file__).resolve().parents[2] / "paper"


def kinds(arms) -> dict[str, str]:
    return {a: arm_spec(a).kind for a in arms}


@functools.cache
def report_cfg() -> dict:
    from rbiqa.config import compose, to_container

    return to_container(compose([]).report)


def metrics_for(root: Path, arms, agreement: bool) -> Metrics:
    from rbiqa.config import compose, to_container

    write_sample_results(root, arms, n_sources=40, with_agreement=agreement)
    with contextlib.chdir(root):
        results = load_results(arms, ["test_paraphrase", "test_unseen", "unanswerable", "general"])
        ag = read_agreement(Path("results/judge/agreement.json"))
    finetuned = [a for a in arms if arm_spec(a).finetuned]
    replicates = {"ft_k3": ["ft_k3", "ft_k3_s2", "ft_k3_s3"]} if "ft_k3_s2" in arms else {}
    # the judge's error-rate correction where the run has a calibrated judge (the full case), none otherwise
    stats_cfg = to_container(compose([]).stats)
    corr = correction_input(stats_cfg, {"backend": "reference" if agreement else "gemini"}, kinds(arms))
    sections = compute_all(
        results, StatsSettings(n_resamples=200), ag, arms, None, finetuned, replicates, correction=corr
    )
    return Metrics(sections)


METRICS: dict[str, Metrics] = {}


@pytest.fixture(scope="module", params=["paper_arms", "minimal_arms"])
def generated(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    arms = list(PAPER_ARMS) if request.param == "paper_arms" else ["base", "ft_k0"]
    m = metrics_for(root, arms, agreement=request.param == "paper_arms")
    METRICS[request.param] = m
    book = build_numbers(m, report_cfg(), n_ablation_families=1 if request.param == "paper_arms" else 0)
    d = 1
    table_tex = "\n".join(
        [
            tables.main_results(m, d),
            tables.counts(m),
            tables.paired(m, ["base"], d),
            tables.per_category(m, "regulation_area", d),
            tables.secondary(m, d),
            tables.power(m, d),
            tables.seeds(m, d),
            tables.judge_errors(m, d),
            tables.corrected(m, d),
            judge_calibration.table(m, d),
        ]
    )
    return request.param, book, book.render(), table_tex


def strip_comments(tex: str) -> str:
    return re.sub(r"(?<!\\)%.*", "", tex)


def prose_files() -> dict[str, str]:
    files = {p.name: p.read_text(encoding="utf-8") for p in sorted((PAPER / "sections").glob("*.tex"))}
    main = (PAPER / "main.tex").read_text(encoding="utf-8")
    files["main.tex (body)"] = main[main.index(r"\begin{document}") :]
    return files


# LaTeX's own capitalised commands that the paper or the tables use (everything else capitalised is ours)
LATEX_CAPITALISED = {"Delta", "LaTeX", "TeX", "InputIfFileExists"}  # LaTeX's own, not numbers.tex's
NEWCOMMAND = re.compile(r"^\\newcommand\{\\([A-Za-z]+)\}\{(.*)\}$")
NEWIF = re.compile(r"^\\newif\\if([A-Za-z]+)\\\1(true|false)$")


def test_numbers_tex_parses(generated):
    _, book, text, _ = generated
    names = []
    for line in text.splitlines():
        if line.startswith("%") or not line:
            continue
        m = NEWCOMMAND.match(line) or NEWIF.match(line)
        assert m, f"unparseable line in numbers.tex: {line}"
        names.append(m.group(1))
        if line.startswith(r"\newcommand"):
            value = m.group(2)
            depth = 0
            for ch in value.replace(r"\{", "").replace(r"\}", ""):
                depth += {"{": 1, "}": -1}.get(ch, 0)
                assert depth >= 0, line
            assert depth == 0, f"unbalanced braces: {line}"
    assert len(names) == len(set(names)), "a macro is defined twice"
    assert len(names) > 100


def used_macros(tex: str) -> tuple[set[str], set[str]]:
    tex = strip_comments(tex)
    flags = set(re.findall(r"\\if([A-Z][A-Za-z]*)", tex))
    macros = set(re.findall(r"\\([A-Z][A-Za-z]*)", tex)) - {f"if{f}" for f in flags} - LATEX_CAPITALISED
    return macros, flags


def test_every_macro_used_in_the_paper_is_defined(generated):
    name, book, _, table_tex = generated
    for fname, tex in [*prose_files().items(), ("generated tables", table_tex)]:
        macros, flags = used_macros(tex)
        undefined = sorted(m for m in macros if m not in book.macros)
        assert not undefined, f"{fname} uses undefined macros {undefined} ({name})"
        assert not sorted(f for f in flags if f not in book.flags), f"{fname}: undefined \\if flags ({name})"


def test_headline_macros_follow_the_metrics(generated):
    name, book, _, _ = generated
    if name != "paper_arms":
        assert book.macros["AccKZeroTestUnseen"] == book.macros["AccFtKZeroTestUnseen"]
        assert book.flags["HasKZero"] is False  # main arm falls back to ft_k0 itself: no k contrast
        assert book.flags["HasJudgeAgreement"] is False and book.macros["JudgeKappa"] == "n/a"
        return
    assert book.macros["AccMainTestUnseen"] == book.macros["AccFtKThreeTestUnseen"]
    assert book.macros["FtVsBaseDiff"] == book.macros["DiffFtKThreeVsBaseTestUnseen"]
    assert book.macros["FtVsBaseVerdict"] in report_cfg()["verdicts"]["accuracy"].values()
    assert all(book.flags[f] for f in ("HasRag", "HasFewshot", "HasKZero", "HasSeeds", "HasJudgeAgreement"))


# Digits allowed in prose: none, except inside these tokens (names, not results).
ALLOWED_DIGIT_TOKENS = ("BM25",)
STRIP = [
    r"\\(?:cite[pt]?|citealp|ref|label|input|includegraphics|begin|end|usepackage|bibliography(?:style)?)\*?(?:\[[^\]]*\])?\{[^}]*\}",
    r"\[(?:htbp|width=[^\]]*)\]",
]


def test_no_result_numbers_typed_by_hand_in_the_prose():
    for fname, tex in prose_files().items():
        text = strip_comments(tex)
        assert not re.search(r"\d\s*\\?%", text), f"{fname}: a percentage typed by hand"
        for pat in STRIP:
            text = re.sub(pat, " ", text)
        for tok in ALLOWED_DIGIT_TOKENS:
            text = text.replace(tok, " ")
        found = [m.group(0) for m in re.finditer(r"[^\s]*\d[^\s]*", text)]
        assert not found, f"{fname}: digits typed by hand (use a macro from numbers.tex): {found[:5]}"


def test_the_digit_check_would_catch_a_typed_result():
    bad = r"The fine-tuned model scored 57.6\% on \texttt{test\_unseen} \citep{wilson1927}."
    text = bad
    for pat in STRIP:
        text = re.sub(pat, " ", text)
    assert re.search(r"\d\s*\\?%", bad) and re.findall(r"[^\s]*\d[^\s]*", text) == ["57.6\\%"]


SWALLOWED = re.compile(r"\\[A-Z][A-Za-z]*[ \t]*\n?[ \t]*(?=[A-Za-z(])")


def swallowed_spaces(tex: str) -> list[str]:
    """Generated macros followed by a space and then text: TeX drops that space ("33.9%on")."""
    return [b for b in SWALLOWED.findall(strip_comments(tex)) if re.search(r"\s", b)]


def test_generated_macros_do_not_swallow_the_following_space():
    assert swallowed_spaces(r"scored \AccMainTestUnseen on") == [r"\AccMainTestUnseen "]
    assert swallowed_spaces(r"scored \AccMainTestUnseen{} on, \AccBase.") == []
    for fname, tex in prose_files().items():
        bad = swallowed_spaces(tex)
        assert not bad, f"{fname}: add {{}} after {bad[:3]}"


def test_judge_agreement_per_answer_model_reaches_the_table_and_the_prose(generated):
    name, book, _, table_tex = generated
    if name != "paper_arms":  # the minimal case runs without a calibrated judge
        assert not book.flags["HasJudgePerModel"] and "No per-model agreement" in table_tex
        return
    from rbiqa.figures.texfmt import signed_pp

    per = METRICS[name]["judge_agreement"]["per_model"]
    assert book.flags["HasJudgePerModel"] and book.flags["HasJudgeHoldout"]
    assert book.macros["JudgeGapBase"] == signed_pp(per["base"]["rate_gap"], 1)
    assert book.macros["JudgeGapFinetuned"] == signed_pp(per["finetuned"]["rate_gap"], 1)
    assert per["base"]["rate_gap"] < 0 < per["finetuned"]["rate_gap"]  # the fixture's judge, as built
    assert "nested CV" in table_tex and "held-out slice" in table_tex
