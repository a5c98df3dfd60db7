"""Fixed output names of the figures stage (shared with report.smk and the paper's \\includegraphics).

The list does not depend on which arms ran: a figure without data is a placeholder, a table without
rows says so, so Snakemake's outputs and the paper's inputs never change shape.
"""

from __future__ import annotations

from pathlib import Path

from rbiqa import paths as P

FIGURES = ("ladder", "accuracy", "forest", "per_area", "loss_curves", "ablation", "judge_confusion")
FORMATS = ("pdf", "png")
TABLES = (
    "ladder",
    "main_results",
    "counts",
    "paired",
    "per_category",
    "secondary",
    "power",
    "seeds",
    "corrected",
    "judge_per_model",
    "human_labels",
    "lineage",
)
MANIFEST = P.FIGURES / "manifest.json"


def figure_paths(formats=FORMATS) -> list[Path]:
    return [P.FIGURES / f"{f}.{ext}" for f in FIGURES for ext in formats]


def table_paths() -> list[Path]:
    return [P.TABLES / f"{t}.tex" for t in TABLES]


def all_outputs(formats=FORMATS) -> list[Path]:
    return [*figure_paths(formats), *table_paths(), P.NUMBERS_TEX, P.LINEAGE_TEX]
