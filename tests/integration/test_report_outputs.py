"""Stats -> figures -> PDF on a synthetic, schema-valid results tree, read back and checked.

The PDF test reads the built report with pdftotext and checks that its headline numbers are the ones
in results/metrics (formatted here independently of rbiqa.figures.texfmt).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from rbiqa import paths as P
from rbiqa.figures.files import all_outputs, figure_paths
from rbiqa.report.build import LatexError, build_pdf
from rbiqa.stats.files import MANIFEST as STATS_MANIFEST
from rbiqa.stats.files import all_metric_paths
from tests.fixtures.sample_results import DEFAULT_ARMS, prepare_report_tree

FAST = ["stats.bootstrap.n_resamples=2000"]
HAVE_LATEX = shutil.which("latexmk") is not None and shutil.which("pdftotext") is not None
needs_latex = pytest.mark.skipif(
    not HAVE_LATEX,
    reason="latexmk/pdftotext not installed (apt-get install latexmk texlive-latex-extra poppler-utils)",
)


@pytest.fixture(scope="module")
def full_tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report_full")
    prepare_report_tree(root, DEFAULT_ARMS, FAST)
    return root


@pytest.fixture(scope="module")
def minimal_tree(tmp_path_factory) -> Path:
    """One fine-tuned arm, no baselines but base, no judge agreement: every \\if branch flips."""
    root = tmp_path_factory.mktemp("report_min")
    prepare_report_tree(root, ["base", "ft_k0"], FAST, with_agreement=False, n_sources=30)
    return root


def metrics(root: Path, name: str) -> dict:
    return json.loads((root / P.METRICS / f"{name}.json").read_text())


@pytest.mark.parametrize("tree", ["full_tree", "minimal_tree"])
def test_every_declared_output_is_written_and_non_empty(tree, request):
    root = request.getfixturevalue(tree)
    for p in [*all_metric_paths(), *all_outputs()]:
        f = root / p
        assert f.exists() and f.stat().st_size > 0, f"{p} missing or empty"
    for p in figure_paths():
        head = (root / p).read_bytes()[:8]
        assert head.startswith(b"%PDF") if p.suffix == ".pdf" else head == b"\x89PNG\r\n\x1a\n", p
    stats_manifest = json.loads((root / STATS_MANIFEST).read_text())
    assert any(k.startswith("results/base/judgments/") for k in stats_manifest["inputs"])
    assert set(stats_manifest["outputs"]) == {p.as_posix() for p in all_metric_paths()}


def test_figures_depend_on_the_data(full_tree, minimal_tree):
    # a placeholder figure is tiny; a real one is not, and the two trees must differ
    full = (full_tree / P.FIGURES / "ablation.png").read_bytes()
    minimal = (minimal_tree / P.FIGURES / "ablation.png").read_bytes()
    assert full != minimal
    assert len(full) > 2 * len(minimal)  # minimal has no ablation: placeholder


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _pp(x: float) -> str:
    v = round(100 * x, 1)
    return "0.0" if v == 0 else f"{v:+.1f}".replace("-", "\u2212")


def pdf_text(pdf: Path) -> str:
    out = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", str(pdf), "-"], capture_output=True, text=True, check=True
    )
    return re.sub(r"\s+", " ", out.stdout)


@needs_latex
def test_pdf_headline_numbers_equal_the_metrics(full_tree):
    pdf = build_pdf(full_tree / "paper", timeout_s=300)
    assert pdf == full_tree / "paper" / "report.pdf" and pdf.stat().st_size > 50_000
    text = pdf_text(pdf)
    summary = metrics(full_tree, "summary")
    acc = {(r["arm"], r["eval_set"]): r for r in metrics(full_tree, "accuracy")["records"]}
    head = summary["headline"]
    main, base, hs = summary["main_arm"], summary["base_arm"], summary["headline_eval_set"]
    am, ab = acc[(main, hs)], acc[(base, hs)]
    expected_abstract = (
        f"scored {_pct(am['accuracy'])} (95% CI [{_pct(am['wilson_lo'])}, {_pct(am['wilson_hi'])}]) against "
        f"{_pct(ab['accuracy'])} [{_pct(ab['wilson_lo'])}, {_pct(ab['wilson_hi'])}] for the base model"
    )
    assert expected_abstract in text
    words = {
        "higher": "a significant improvement",
        "lower": "a significant decline",
        "inconclusive": "no detectable difference",
    }
    expected_diff = (
        f"{words[head['direction']]} (paired difference {_pp(head['diff'])} percentage points, 95% CI "
        f"[{_pp(head['diff_lo'])}, {_pp(head['diff_hi'])}]"
    )
    assert expected_diff in text
    # the main-results table row of the main arm carries its accuracy on every set
    for e in summary["eval_sets"]:
        assert f"{100 * acc[(main, e)]['accuracy']:.1f} [" in text
    assert "7.0% to 57.6%" in text  # the reference study, from report.reference_study
    body = text.split("Lineage")[0].replace("shown as \u201cn/a\u201d", "")
    assert "n/a" not in body  # every role ran in the default arms: no macro fell back to n/a


@needs_latex
def test_pdf_builds_when_most_arms_did_not_run(minimal_tree):
    pdf = build_pdf(minimal_tree / "paper", timeout_s=300)
    text = pdf_text(pdf)
    assert "No judge-agreement measurement was available" in text
    assert "Fine-tuning or retrieval?" not in text  # no RAG arm: its paragraph is switched off
    acc = {(r["arm"], r["eval_set"]): r for r in metrics(minimal_tree, "accuracy")["records"]}
    assert f"reached {_pct(acc[('ft_k0', 'test_unseen')]['accuracy'])}" in text


@needs_latex
def test_latex_error_is_reported_with_its_line(tmp_path):
    paper = tmp_path / "paper"
    paper.mkdir()
    (paper / "main.tex").write_text(
        "\\documentclass{article}\\begin{document}\\UndefinedThing\\end{document}\n"
    )
    with pytest.raises(LatexError, match="Undefined control sequence"):
        build_pdf(paper, timeout_s=120)
