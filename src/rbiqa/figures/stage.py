"""`python -m rbiqa.figures`: metrics in; figures, tables, numbers.tex and lineage.tex out."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from rbiqa import paths as P  # noqa: E402
from rbiqa.config import to_container  # noqa: E402
from rbiqa.figures import human_labels, judge_calibration, plots, tables  # noqa: E402
from rbiqa.figures.data import Metrics, ablation_families, read_trainer_log  # noqa: E402
from rbiqa.figures.design import study_design  # noqa: E402
from rbiqa.figures.files import FORMATS, MANIFEST, all_outputs  # noqa: E402
from rbiqa.figures.lineage import lineage_tex  # noqa: E402
from rbiqa.figures.numbers import build_numbers  # noqa: E402
from rbiqa.io import atomic_write  # noqa: E402
from rbiqa.manifest import write_manifest  # noqa: E402
from rbiqa.stages import figures_inputs, flat  # noqa: E402
from rbiqa.study import Study, load_study  # noqa: E402

log = logging.getLogger(__name__)


def save(fig: plt.Figure, stem: str, dpi: int, out_dir: Path = P.FIGURES) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in FORMATS:
        path = out_dir / f"{stem}.{ext}"
        # no timestamps in the files, so unchanged figures hash the same for DVC and freshen
        meta = {"CreationDate": None} if ext == "pdf" else {"Software": None}
        with atomic_write(path, "wb") as f:
            fig.savefig(f, format=ext, dpi=dpi, bbox_inches="tight", metadata=meta)
        paths.append(path)
    plt.close(fig)
    return paths


def write_text(path: Path, text: str) -> None:
    with atomic_write(path) as f:
        f.write(text)


def make_figures(m: Metrics, report_cfg: dict, study: Study, root: Path = Path(".")) -> dict[str, float]:
    """Draw and save every figure; returns seconds per figure (logged, to keep the reviewer path fast)."""
    fcfg = report_cfg["figures"]
    plots.apply_style(fcfg.get("style", {}))
    dpi = int(fcfg.get("png_dpi", 150))
    acc = m.frame("accuracy")
    paired = m.frame("paired")
    cat = pd.DataFrame(m["per_category"]["accuracy"])
    base, main = m.summary.get("base_arm"), m.main_arm
    cat_arms = [a for a in (base, main) if a]
    cat_sets = list(dict.fromkeys(cat["eval_set"])) if len(cat) else []
    logs = [read_trainer_log(a, root) for a in m.summary.get("ft_arms", [])]
    families = ablation_families(study, main, root)
    rungs = [e for e in fcfg.get("ladder_sets", []) if e in m.eval_sets]
    builders = {
        "ladder": lambda: plots.ladder(acc, m.arms, rungs, m.summary.get("ft_arms", [])),
        "accuracy": lambda: plots.accuracy_by_arm(
            acc, m.arms, m.eval_sets, m.summary.get("ft_arms", []), fcfg.get("eval_set_labels", {})
        ),
        "forest": lambda: plots.forest(paired, base or "base", m.eval_sets),
        "per_area": lambda: plots.per_area(
            cat, cat_arms, cat_sets, fcfg.get("small_n_colour", "0.65"), int(fcfg.get("max_areas", 30))
        ),
        "loss_curves": lambda: plots.loss_curves(
            pd.concat(logs) if logs else pd.DataFrame(), int(fcfg.get("loss_smoothing", 5))
        ),
        "ablation": lambda: plots.ablations(
            acc,
            families,
            rungs or m.eval_sets,
            m["seeds"].get("groups", {}),
            fcfg.get("ablation_labels", {}),
            fcfg.get("ablation_log_scale", []),
        ),
        "judge_confusion": lambda: plots.judge_confusion(m["judge_agreement"]),
    }
    timings = {}
    for stem, build in builders.items():
        t0 = time.perf_counter()
        save(build(), stem, dpi)
        timings[stem] = round(time.perf_counter() - t0, 3)
    return timings


def make_tables(m: Metrics, report_cfg: dict, root: Path = Path(".")) -> None:
    tcfg = report_cfg.get("tables", {})
    d = int(tcfg.get("decimals", 1))
    rungs = [e for e in report_cfg["figures"].get("ladder_sets", []) if e in m.eval_sets]
    out = {
        "ladder": tables.ladder(m, rungs, d),
        "main_results": tables.main_results(m, d),
        "counts": tables.counts(m),
        "paired": tables.paired(m, tcfg.get("paired_refs_in_table", ["base"]), d),
        "per_category": tables.per_category(m, tcfg.get("category_grouping", "regulation_area"), d),
        "secondary": tables.secondary(m, d),
        "power": tables.power(m, d),
        "seeds": tables.seeds(m, d),
        "corrected": tables.judge_errors(m, d) + "\n" + tables.corrected(m, d),
        "judge_per_model": judge_calibration.table(m, d),
        "human_labels": human_labels.table(m, d),
    }
    lineage_table, appendix = lineage_tex(m, root)
    out["lineage"] = lineage_table
    for name, text in out.items():
        write_text(P.TABLES / f"{name}.tex", text)
    write_text(P.LINEAGE_TEX, appendix)


def run(cfg: DictConfig) -> None:
    report_cfg = to_container(cfg.report)
    m = Metrics.load()
    study = load_study(cfg)
    timings = make_figures(m, report_cfg, study)
    log.info("figure seconds: %s", timings)
    make_tables(m, report_cfg)
    n_fam = len(ablation_families(study, m.main_arm))
    design = study_design(
        m.main_arm,
        neg_arm=m.role_arm("MainNeg"),
        mix_arm=m.role_arm("MainMix"),
        hardneg_arm=m.role_arm("MainHardneg"),
        hardneg_ctrl_arm=m.role_arm("MainHardnegCtrl"),
    )
    write_text(P.NUMBERS_TEX, build_numbers(m, report_cfg, n_fam, design).render())
    ft = m.summary.get("ft_arms", [])
    inputs = flat(figures_inputs(ft))
    write_manifest(MANIFEST, "figures", to_container(cfg), inputs, all_outputs(), extra={"seconds": timings})
