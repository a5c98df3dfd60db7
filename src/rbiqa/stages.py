"""The pipeline's stages in one place: order, code, config sections, and the files each reads and writes.

Three readers used to restate these by hand and could drift apart: the stamps (which code and config a
stage's outputs depend on), each stage's manifest call (what it read and wrote) and its rule in
workflow/rules/*.smk (what Snakemake schedules it on). They now all read this module, so a file that a
stage starts to read is declared once and reaches both its rule and its manifest.

Kept light (paths and config only): the rules import it at DAG time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rbiqa import paths as P


@dataclass(frozen=True)
class Stage:
    name: str
    order: float  # pipeline order; rbiqa.freshen walks manifests in this order
    code: tuple[str, ...] = ()  # modules or subpackages of rbiqa whose content goes into the stamp
    sections: tuple[str, ...] = ()  # top-level config sections the stage's outputs depend on
    per_arm: bool = False  # config differs per arm (stamped per arm, else once under "all")

    @property
    def stamped(self) -> bool:
        """Stages run by a rule with a config stamp; the others (labels) run by hand."""
        return bool(self.sections)


STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage("download_data", 1, ("download.py", "schemas.py"), ("data", "seed")),
        Stage("fetch_model", 1, ("fetch_model.py",), ("model",)),
        Stage("split", 2, ("split.py",), ("data", "split", "seed")),
        Stage("rephrase", 3, ("rephrase", "llm", "models.py", "textsim.py"), ("rephrase", "seed")),
        Stage("clean", 4, ("clean", "schemas.py", "textsim.py"), ("clean", "seed")),
        Stage(
            "train",
            5,
            # study.py: what a kind trains; schemas.py, generate/inputs.py: a refine arm's mining files
            ("train", "models.py", "nf4.py", "completion.py", "study.py", "schemas.py", "generate/inputs.py"),
            ("model", "train", "arm", "seed"),
            per_arm=True,
        ),
        Stage("retrieval_index", 5),
        Stage(
            "generate",
            6,
            # study.py: which adapter and prompt an arm's kind answers with
            ("generate", "models.py", "nf4.py", "completion.py", "study.py", "schemas.py"),
            ("model", "generate", "arm", "seed"),
            per_arm=True,
        ),
        Stage("judge", 7, ("judge", "llm", "models.py"), ("judge",)),
        Stage(
            "labels_export", 7.2
        ),  # rbiqa.judge.labels export: a blinded sheet from the judgments (by hand)
        Stage(
            "labels_ingest", 7.3
        ),  # rbiqa.judge.labels ingest: data/labels/<name>.csv, read by judge_agreement
        Stage("judge_agreement", 7.5, ("judge", "stats/kappa.py"), ("judge",)),  # reads judgments of stage 7
        # stats: also the reference judge's error rates, which correct accuracies; judge: whose calibration
        Stage(
            "stats",
            8,
            ("stats", "judge/reference/reference_params.json", "judge/reference/calibration_data.py"),
            ("stats", "study", "generate", "judge", "seed"),
        ),
        Stage("figures", 9, ("figures", "train/outputs.py"), ("report",)),
        Stage("report", 10, ("report",), ("report",)),
    )
}
STAMPED = [name for name, s in STAGES.items() if s.stamped]


def posix(paths: Iterable[Path | str]) -> list[str]:
    return [Path(p).as_posix() for p in paths]


# --- the files of each stage: named, so a rule can spread them as named inputs/outputs --------------


def download_outputs() -> dict[str, Path]:
    return {
        "qa": P.RAW_QA,
        "unanswerable": P.RAW_UNANSWERABLE,
        "general": P.RAW_GENERAL,
        "abstention_train": P.RAW_ABSTENTION_TRAIN,
        "general_train": P.RAW_GENERAL_TRAIN,
        "quarantine": P.RAW_QUARANTINE,
        "report": P.RAW_REPORT,
    }


def download_inputs(dcfg: Any) -> dict[str, Any]:
    """The stamp, and the snapshot files the data config names (the QA file itself only when local; from
    the Hub it is pinned by revision, in the stamp)."""
    snapshot = [Path(str(dcfg.path))] if dcfg.source == "local" else []
    for key in ("unanswerable_path", "general_path", "abstention_train_path", "general_train_path"):
        snapshot.append(Path(str(dcfg[key])))
    return {"stamp": P.stamp("download_data"), "snapshot": snapshot}


def split_inputs() -> dict[str, Path]:
    return {"qa": P.RAW_QA, "stamp": P.stamp("split")}


def split_outputs() -> dict[str, Path]:
    return {
        "train": P.SPLIT_TRAIN,
        "val": P.SPLIT_VAL,
        "test_unseen": P.SPLIT_TEST_UNSEEN,
        "para": P.SPLIT_PARA_SOURCES,
        "report": P.SPLIT_REPORT,
    }


def rephrase_backend_inputs(rcfg: Any) -> list[Path]:
    """The files a rephrase config reads besides the split: its prompt, and the local model's manifest
    or the shipped paraphrases."""
    from rbiqa.rephrase.prompts import PROMPT_DIR

    if rcfg.backend == "shipped":  # served as written: no prompt is involved
        return [Path(str(rcfg.path))]
    files = [repo_relative(PROMPT_DIR / f"rephrase_{rcfg.prompt_version}.txt")]
    if rcfg.backend == "hf_local":
        files.append(Path(str(rcfg.model_path)) / "manifest.json")
    return files


def rephrase_inputs(rcfg: Any) -> dict[str, Any]:
    return {"train": P.SPLIT_TRAIN, "backend": rephrase_backend_inputs(rcfg), "stamp": P.stamp("rephrase")}


def rephrase_outputs() -> dict[str, Path]:
    return {
        "train": P.REPHRASE_TRAIN,
        "para": P.REPHRASE_TEST_PARA,
        "val_para": P.REPHRASE_VAL_PARA,
        "rejected": P.REPHRASE_REJECTED,
        "report": P.REPHRASE_REPORT,
    }


def clean_inputs() -> dict[str, Path]:
    return {
        "train": P.REPHRASE_TRAIN,
        "para": P.REPHRASE_TEST_PARA,
        "val_para": P.REPHRASE_VAL_PARA,
        "val": P.SPLIT_VAL,
        "test_unseen": P.SPLIT_TEST_UNSEEN,
        "unanswerable": P.RAW_UNANSWERABLE,
        "general": P.RAW_GENERAL,
        "abstention_train": P.RAW_ABSTENTION_TRAIN,
        "general_train": P.RAW_GENERAL_TRAIN,
        "stamp": P.stamp("clean"),
    }


def clean_outputs() -> dict[str, Any]:
    return {
        "train": P.CLEAN_TRAIN,
        "val": P.CLEAN_VAL,
        "val_para": P.CLEAN_VAL_PARA,
        "abstention_train": P.CLEAN_ABSTENTION_TRAIN,
        "general_train": P.CLEAN_GENERAL_TRAIN,
        "eval_sets": [P.eval_set_path(s) for s in P.ITEM_SETS],  # the eval sets and the mining set
        "removed": P.CLEAN_REMOVED,
        "report": P.CLEAN_REPORT,
        "contamination": P.CONTAMINATION,
    }


def adapter_files(arm: str) -> dict[str, Path]:
    d = P.adapter_dir(arm)
    return {"adapter": d / "adapter_model.safetensors", "adapter_config": d / "adapter_config.json"}


def train_inputs(spec: Any, mix_pools: Iterable[str], model_dir: Path) -> dict[str, Any]:
    """What a trained arm (rbiqa.study.ArmSpec) reads: its QA rows, the eval-loss sets, the pools it mixes
    in, the base model, and for a refine arm the adapter its round continues and the mining judgments its
    rows are chosen from."""
    files: dict[str, Any] = {
        "stamp": P.stamp("train", spec.name),
        "train": P.CLEAN_TRAIN,
        "val_para": P.CLEAN_VAL_PARA,
        "val": P.CLEAN_VAL,
        "mix": [P.MIX_POOLS[pool] for pool in mix_pools],
        "model": Path(model_dir) / "manifest.json",
    }
    if spec.kind == "refine":
        files |= {f"init_{k}": v for k, v in adapter_files(spec.adapter_of).items()}
        files |= {
            "mining": P.eval_set_path(P.TRAIN_MINING),
            "mining_judgments": P.judgments(spec.adapter_of, P.TRAIN_MINING),
        }
    return files


def generate_inputs(spec: Any, eval_sets: Iterable[str], model_dir: Path) -> dict[str, Any]:
    """What one generate job of an arm reads: the eval sets, the base model, the adapter its answers come
    from (its own, or adapter_of's), and the training pairs a few-shot or retrieval prompt draws on."""
    files: dict[str, Any] = {
        "stamp": P.stamp("generate", spec.name),
        "eval_sets": [P.eval_set_path(e) for e in eval_sets],
        "model": Path(model_dir) / "manifest.json",
    }
    if spec.adapter_arm:
        files |= adapter_files(spec.adapter_arm)
    if spec.prompt != "base":
        files["train"] = P.CLEAN_TRAIN
    return files


def judge_deciders(jcfg: Any) -> list[Path]:
    """The files that decide the configured judge's verdicts besides the data: the reference judge's
    parameters, or the LLM judge's two rubric prompts (`judge.rubric`, `judge.abstention_rubric`), and the
    abstention detector's exemplars (every backend's answers are checked with it). A refit or a new prompt
    wording reruns the judge."""
    from rbiqa.judge.protocol import PROMPT_DIR
    from rbiqa.judge.reference import DEFAULT_PARAMS, EXEMPLARS_PATH

    if jcfg.get("rubric") is None:  # the reference judge: no prompt
        files = [Path(str(jcfg.get("params_path") or DEFAULT_PARAMS))]
    else:
        files = [PROMPT_DIR / f"{jcfg.rubric}.txt", PROMPT_DIR / f"{jcfg.abstention_rubric}.txt"]
    return [repo_relative(f) for f in [*files, EXEMPLARS_PATH]]


def judge_inputs(jcfg: Any, arm: str, eval_sets: Iterable[str]) -> dict[str, Any]:
    eval_sets = list(eval_sets)
    return {
        "generations": [P.generations(arm, e) for e in eval_sets],
        "eval_sets": [P.eval_set_path(e) for e in eval_sets],
        "deciders": judge_deciders(jcfg),
        "stamp": P.stamp("judge"),
    }


def stats_inputs(arms: list[str], eval_sets: list[str], nll_sets: list[str]) -> dict[str, Any]:
    """The judgments of every arm and eval set, the generations that carry the reference loss, the eval
    items and the judge agreement report (the correction's calibration file is the stats' own choice)."""
    return {
        "stamp": P.stamp("stats"),
        "judgments": [P.judgments(a, e) for a in arms for e in eval_sets],
        "generations": [P.generations(a, e) for a in arms for e in nll_sets],
        "eval_items": [P.eval_set_path(e) for e in eval_sets],
        "agreement": P.JUDGE_AGREEMENT,
    }


def stats_manifest() -> Path:
    from rbiqa.stats.files import MANIFEST

    return MANIFEST


def stats_outputs() -> list[Path]:
    from rbiqa.stats.files import all_metric_paths

    return all_metric_paths()


ADAPTER_FILES = ("trainer_log.csv", "manifest.json", "train_summary.json")


def figures_inputs(ft_arms: list[str]) -> dict[str, Any]:
    """The metrics, every fine-tuned arm's training record, and the upstream manifests and reports the
    lineage appendix and the study design read."""
    return {
        "stamp": P.stamp("figures"),
        "metrics": stats_outputs(),
        "adapters": [P.adapter_dir(a) / n for a in ft_arms for n in ADAPTER_FILES],
        "lineage": [
            P.RAW_MANIFEST,
            P.RAW_REPORT,
            P.SPLIT_MANIFEST,
            P.SPLIT_REPORT,
            P.REPHRASE_MANIFEST,
            P.REPHRASE_REPORT,
            P.CLEAN_MANIFEST,
            P.CLEAN_REPORT,
            P.CONTAMINATION,
            stats_manifest(),  # the lineage appendix's git commit and library versions
        ],
    }


def figures_outputs() -> list[Path]:
    from rbiqa.figures.files import all_outputs

    return all_outputs()


def paper_sources() -> list[Path]:
    sections = sorted((P.PAPER / "sections").glob("*.tex"))
    return [P.PAPER / "main.tex", P.PAPER / "refs.bib", *sections]


def report_inputs() -> dict[str, Any]:
    return {"stamp": P.stamp("report"), "generated": figures_outputs(), "sources": paper_sources()}


# --- helpers ------------------------------------------------------------------------------------------


def flat(files: dict[str, Any] | list[Any]) -> list[Path]:
    """Every path of a named file list (as a manifest records them), lists spread."""
    values = files.values() if isinstance(files, dict) else files
    out: list[Path] = []
    for v in values:
        out.extend(Path(x) for x in (v if isinstance(v, list | tuple) else [v]))
    return out


def for_rule(files: dict[str, Any]) -> dict[str, Any]:
    """The same named files as the strings Snakemake takes."""
    return {k: posix(v) if isinstance(v, list | tuple) else Path(v).as_posix() for k, v in files.items()}


def repo_relative(path: Path) -> Path:
    """Manifests key files by repository-relative path (the working directory of every rule)."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path
