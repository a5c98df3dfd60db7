"""Snakemake wiring of report.smk: a report.* change reruns only figures + report; a stats.* change also stats.

Runs `snakemake -n` on a scratch copy of conf/ and the rule files with a synthetic results tree, so the
DAG-time stamps (rbiqa.stamps) are exercised for real. No job is executed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rbiqa import paths as P
from rbiqa.figures.files import MANIFEST as FIGURES_MANIFEST
from rbiqa.figures.files import all_outputs
from rbiqa.stats.files import MANIFEST as STATS_MANIFEST
from rbiqa.stats.files import all_metric_paths
from tests.fixtures.sample_results import write_sample_results

REPO = Path(__file__).resolve().parents[2]
SNAKEFILE = """configfile: "conf/pipeline.yaml"

include: "workflow/rules/common.smk"
include: "workflow/rules/report.smk"

rule all:
    input:
        P.REPORT_PDF.as_posix(),
"""

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("snakemake", path=str(Path(sys.executable).parent)) is None,
        reason="snakemake not installed next to this python",
    ),
]


def planned_jobs(root: Path) -> set[str]:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run(
        ["snakemake", "-n", "--cores", "1"], cwd=root, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    if "Nothing to be done" in out:
        return set()
    block = out.split("Job stats:")[1].split("total")[0]
    return {m.group(1) for m in re.finditer(r"^(\w+)\s+\d+\s*$", block, re.M)}


def _set_mtime(paths, t: float) -> None:
    for p in paths:
        os.utime(p, (t, t))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dag")
    shutil.copytree(REPO / "conf", root / "conf")
    shutil.copytree(REPO / "workflow" / "schemas", root / "workflow" / "schemas")
    (root / "workflow" / "rules").mkdir()
    for f in ("common.smk", "report.smk"):
        shutil.copy(REPO / "workflow" / "rules" / f, root / "workflow" / "rules" / f)
    shutil.copytree(REPO / "paper", root / "paper", ignore=shutil.ignore_patterns("build", "*.pdf"))
    pipe = root / "conf" / "pipeline.yaml"
    # freshen restores mtimes from manifests (another stage's module); not under test here
    pipe.write_text(re.sub(r"^freshen: .*$", "freshen: false", pipe.read_text(), flags=re.M))
    (root / "Snakefile").write_text(SNAKEFILE)
    write_sample_results(root, n_sources=10)
    return root


def test_config_changes_rerun_exactly_the_dependent_stages(workdir):
    assert planned_jobs(workdir) == {"stats", "figures", "report", "all"}  # also writes the stamps
    now = time.time()
    _set_mtime([p for p in workdir.rglob("*") if p.is_file()], now - 100)
    groups = [
        ([*all_metric_paths(), STATS_MANIFEST], now - 60),
        ([*all_outputs(), FIGURES_MANIFEST], now - 40),
        ([P.REPORT_PDF, P.manifest_for(P.REPORT_PDF)], now - 20),
    ]
    for paths, t in groups:
        for p in paths:
            f = workdir / p
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text("x")
            os.utime(f, (t, t))
    assert planned_jobs(workdir) == set(), "all outputs are newer than their inputs"

    report_cfg = workdir / "conf" / "report" / "default.yaml"
    report_cfg.write_text(report_cfg.read_text().replace("palette: colorblind", "palette: deep"))
    assert planned_jobs(workdir) == {"figures", "report", "all"}

    stats_cfg = workdir / "conf" / "stats" / "default.yaml"
    stats_cfg.write_text(stats_cfg.read_text().replace("n_resamples: 10000", "n_resamples: 5000"))
    assert planned_jobs(workdir) == {"stats", "figures", "report", "all"}
