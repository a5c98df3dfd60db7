"""The lineage appendix, generated from the stage manifests rather than typed.

Manifests and reports belong to other stages whose optional keys may change, so every lookup is
defensive: a fact that a manifest does not record prints as "not recorded" instead of failing the
report. Hashes are truncated to 12 hex digits for the table; the manifests keep the full ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from rbiqa import paths as P
from rbiqa.figures.data import Metrics, read_manifest, read_report
from rbiqa.figures.tables import lineage_table, longtable, tabular
from rbiqa.figures.texfmt import arm_tex, escape
from rbiqa.files import Manifest
from rbiqa.stats.files import MANIFEST as STATS_MANIFEST

NOT_RECORDED = "not recorded"
LIBS_SHOWN = (
    "python",
    "torch",
    "transformers",
    "peft",
    "trl",
    "bitsandbytes",
    "statsmodels",
    "scipy",
    "numpy",
    "pandas",
    "seaborn",
    "snakemake",
    "hydra-core",
    "rbiqa",
)


def short(h: object) -> str:
    return str(h)[:12] if isinstance(h, str) and h else NOT_RECORDED


def _output_hash(man: Manifest | None, suffix: str) -> str:
    outs = man.outputs if man else {}
    return short(next((v for k, v in outs.items() if k.endswith(suffix)), None))


def _scalars(report: Mapping | None, limit: int = 8) -> dict[str, object]:
    """Top-level and one-level-nested scalar entries of a stage report (counts, thresholds)."""
    out: dict[str, object] = {}
    for k, v in (report or {}).items():
        if isinstance(v, int | float | str | bool):
            out[k] = v
        elif isinstance(v, dict):
            out.update({f"{k}.{kk}": vv for kk, vv in v.items() if isinstance(vv, int | float | str | bool)})
        if len(out) >= limit:
            break
    return dict(list(out.items())[:limit]) or {"report": NOT_RECORDED}


def _or(v: object) -> object:
    return NOT_RECORDED if v in (None, "", {}, []) else v


def collect_facts(m: Metrics, root: Path = Path(".")) -> dict[str, dict[str, object]]:
    raw = read_manifest(root / P.RAW_MANIFEST)
    split = read_manifest(root / P.SPLIT_MANIFEST)
    reph = read_manifest(root / P.REPHRASE_MANIFEST)
    clean = read_manifest(root / P.CLEAN_MANIFEST)
    stats = read_manifest(root / STATS_MANIFEST)
    cfg = stats.config_dict if stats else {}
    data_cfg = (raw.config_dict if raw else {}).get("data", {})
    reph_extra = reph.extra if reph else {}
    reph_cfg = (reph.config_dict if reph else {}).get("rephrase", {})
    facts: dict[str, dict[str, object]] = {
        "data": {
            "source": _or(data_cfg.get("hf_repo") or data_cfg.get("path") or data_cfg.get("name")),
            "revision": _or(data_cfg.get("hf_revision")),
            "raw QA sha256": _output_hash(raw, "qa.jsonl"),
            "experiment": _or(cfg.get("experiment_name")),
            "global seed": _or(cfg.get("seed", m.summary.get("seed"))),
        },
        "split": {
            "split manifest": "present" if split else NOT_RECORDED,
            **_scalars(read_report(root / P.SPLIT_REPORT)),
        },
        "rephrase": {
            "backend": _or(reph_extra.get("backend") or reph_cfg.get("name")),
            "model": _or(reph_extra.get("model_id") or reph_cfg.get("model_id")),
            "prompt sha": short(reph_extra.get("prompt_sha256")),
            **_scalars(read_report(root / P.REPHRASE_REPORT), 4),
        },
        "clean": {
            "clean manifest": "present" if clean else NOT_RECORDED,
            **_scalars(read_report(root / P.CLEAN_REPORT)),
            **{f"contamination {k}": v for k, v in _scalars(read_report(root / P.CONTAMINATION), 4).items()},
        },
        "judge": {
            "judge model(s)": _or(", ".join(m.summary.get("judge_models", []))),
            "agreement block": _or(m["judge_agreement"].get("primary")),
        },
        "stats": {
            "bootstrap resamples": m.summary.get("n_resamples"),
            "CI level": m.summary.get("ci_level"),
            "git commit": _or(stats.git_sha if stats else None),
        },
    }
    return facts


def mean_rephrasings(per_source: dict | None) -> str:
    """Rephrasings per source question an arm really trained on (below k where the rephraser's filters or
    the cleaner left fewer): the mean, and the share of sources that reached the most."""
    if not per_source:
        return NOT_RECORDED
    counts = {int(n): int(c) for n, c in per_source.items()}
    total = sum(counts.values())
    top = max(counts)
    return f"{sum(n * c for n, c in counts.items()) / total:.2f} ({100 * counts[top] / total:.0f}% at {top})"


def _round(x: object) -> object:
    return round(x, 3) if isinstance(x, float) else x


def adapter_rows(m: Metrics, root: Path = Path(".")) -> list[list[str]]:
    rows = []
    for arm in m.summary.get("ft_arms", []):
        man = read_manifest(root / P.adapter_dir(arm) / "manifest.json")
        c = man.config_dict if man else {}
        train = c.get("train", {})
        extra = man.extra if man else {}
        sha = _output_hash(man, "adapter_model.safetensors")
        if sha == NOT_RECORDED:
            sha = short(extra.get("adapter_sha256"))
        rows.append(
            [
                arm_tex(arm),
                rf"\texttt{{{sha}}}",
                escape(_or(c.get("arm", {}).get("n_rephrasings"))),
                escape(mean_rephrasings(extra.get("rephrasings_per_source"))),
                escape(_or(train.get("lora", {}).get("r"))),
                escape(_or(train.get("learning_rate"))),
                escape(_or(train.get("exposures_per_fact"))),
                escape(_or(_round(extra.get("num_train_epochs")))),
                escape(_or(train.get("max_steps"))),
                escape(_or(extra.get("global_step"))),
                escape(_or(c.get("seed"))),
            ]
        )
    return rows


def library_versions(m: Metrics, root: Path = Path(".")) -> dict[str, str]:
    """Versions from the first train manifest (where the GPU stack matters), else from stats'."""
    for arm in m.summary.get("ft_arms", []):
        man = read_manifest(root / P.adapter_dir(arm) / "manifest.json")
        if man and man.versions:
            return dict(man.versions)
    stats = read_manifest(root / STATS_MANIFEST)
    return dict(stats.versions if stats else {})


def lineage_tex(m: Metrics, root: Path = Path(".")) -> tuple[str, str]:
    """(results/tables/lineage.tex, paper/lineage.tex)."""
    table = lineage_table(collect_facts(m, root))
    versions = library_versions(m, root)
    vrows = [[escape(k), rf"\texttt{{{escape(versions[k])}}}"] for k in LIBS_SHOWN if k in versions]
    adapters = adapter_rows(m, root)
    appendix = "\n".join(
        [
            "% Generated by rbiqa.figures (lineage); do not edit.",
            r"\section{Lineage}\label{app:lineage}",
            "Every value below is read from the manifests that the pipeline's stages write next to their "
            "outputs; none is typed by hand.",
            r"\input{../results/tables/lineage.tex}",
            longtable(
                [
                    "Arm",
                    "adapter sha256",
                    "$k$",
                    "rephr./source",
                    "$r$",
                    "learning rate",
                    "exposures",
                    "epochs",
                    "max steps",
                    "steps run",
                    "seed",
                ],
                adapters,
                "llrrrrrrrrr",
                "Fine-tuned adapters: content hash and the training settings recorded in their manifests "
                "(exposures: times each source fact is trained on, in any wording; epochs: the passes over "
                "the arm's rows that follow; both apply only where max steps is not positive). "
                "rephr./source: rephrasings per "
                "source question the arm really trained on, mean (share of sources at the most), which "
                "falls short of $k$ where the rephraser's filters kept fewer.",
                "tab:adapters",
            ),
            tabular(
                ["Library", "Version"],
                vrows,
                "ll",
                "Library versions recorded by the pipeline.",
                "tab:versions",
            ),
        ]
    )
    return table, appendix
