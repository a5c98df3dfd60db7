"""Run latexmk on the paper and surface the first LaTeX error instead of a wall of log.

The build runs from the paper directory (main.tex finds ../results and numbers.tex relative to it) into
build/, then copies main.pdf to report.pdf. SOURCE_DATE_EPOCH pins the PDF's timestamps, so rebuilding
unchanged sources gives the same bytes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

LATEXMK_ARGS = ("-pdf", "-interaction=nonstopmode", "-halt-on-error", "-file-line-error", "-g")


class LatexError(RuntimeError):
    """The PDF build failed; the message carries the first error lines of the LaTeX log."""


def find_latexmk(name: str = "latexmk") -> str:
    exe = shutil.which(name)
    if exe is None:
        raise LatexError(
            f"{name} not found on PATH: install it (Debian: apt-get install latexmk texlive-latex-recommended "
            "texlive-latex-extra texlive-fonts-recommended) or use the conda env in workflow/envs"
        )
    return exe


def first_errors(log_text: str, context: int = 3, limit: int = 3) -> str:
    lines = log_text.splitlines()
    hits = [i for i, ln in enumerate(lines) if ln.startswith("!") or re.match(r"^[^:\s]+\.tex:\d+:", ln)]
    chunks = ["\n".join(lines[i : i + context + 1]) for i in hits[:limit]]
    return "\n---\n".join(chunks) if chunks else "\n".join(lines[-20:])


def build_pdf(
    paper_dir: Path,
    main: str = "main.tex",
    out_name: str = "report.pdf",
    latexmk: str = "latexmk",
    timeout_s: int = 600,
    source_date_epoch: int | None = 0,
) -> Path:
    paper_dir = Path(paper_dir)
    exe = find_latexmk(latexmk)
    env = dict(os.environ)
    if source_date_epoch is not None:
        env["SOURCE_DATE_EPOCH"] = str(source_date_epoch)
        env["FORCE_SOURCE_DATE"] = "1"
    cmd = [exe, *LATEXMK_ARGS, "-outdir=build", main]
    try:
        proc = subprocess.run(cmd, cwd=paper_dir, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        raise LatexError(f"latexmk timed out after {timeout_s}s in {paper_dir}") from e
    built = paper_dir / "build" / Path(main).with_suffix(".pdf").name
    if proc.returncode != 0 or not built.exists():
        log = paper_dir / "build" / Path(main).with_suffix(".log").name
        text = (
            log.read_text(encoding="utf-8", errors="replace") if log.exists() else proc.stdout + proc.stderr
        )
        raise LatexError(f"latexmk failed (exit {proc.returncode}) in {paper_dir}:\n{first_errors(text)}")
    out = paper_dir / out_name
    tmp = out.with_suffix(".pdf.tmp")
    shutil.copyfile(built, tmp)
    tmp.replace(out)
    return out
