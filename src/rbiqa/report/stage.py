"""`python -m rbiqa.report`: numbers, tables, figures and the paper sources in; paper/report.pdf out."""

from __future__ import annotations

import logging

from omegaconf import DictConfig

from rbiqa import paths as P
from rbiqa.config import to_container
from rbiqa.figures.files import all_outputs
from rbiqa.manifest import write_manifest
from rbiqa.report.build import build_pdf

log = logging.getLogger(__name__)


def paper_sources() -> list:
    return sorted([P.PAPER / "main.tex", P.PAPER / "refs.bib", *(P.PAPER / "sections").glob("*.tex")])


def run(cfg: DictConfig) -> None:
    latex = to_container(cfg.report).get("latex", {})
    pdf = build_pdf(
        P.PAPER,
        latexmk=latex.get("latexmk", "latexmk"),
        timeout_s=int(latex.get("timeout_s", 600)),
        source_date_epoch=latex.get("source_date_epoch", 0),
    )
    log.info("wrote %s", pdf)
    inputs = [P.stamp("report"), *paper_sources(), *all_outputs()]
    write_manifest(P.manifest_for(P.REPORT_PDF), "report", to_container(cfg), inputs, [pdf])
