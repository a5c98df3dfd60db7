# Config loading, derived wildcards and helpers shared by every rule file.
import os
import shlex
import sys
from functools import lru_cache

from snakemake.utils import validate

from rbiqa import paths as P
from rbiqa.config import compose as _compose
from rbiqa.stamps import write_stamps

validate(config, "../schemas/pipeline.schema.yaml")


# Rules call `python -m rbiqa.<stage>`: make that the interpreter running Snakemake (the project's venv)
# for local jobs and, through sbatch's exported environment, for SLURM jobs, activated or not.
envvars:
    "PATH",


os.environ["PATH"] = os.pathsep.join(
    [os.path.dirname(sys.executable), os.environ.get("PATH", "")]
)

EXP = config["experiment"]
if EXP not in config["arms"]:
    raise ValueError(
        f"experiment {EXP!r} has no arms list in conf/pipeline.yaml (known: {sorted(config['arms'])})"
    )
ARMS = list(config["arms"][EXP])
EVAL_SETS = list(config["eval_sets"])
OVERRIDES = list(config.get("overrides", []))
# Hydra arguments every stage gets: the experiment (scale) and any user overrides.
HYDRA = " ".join(shlex.quote(a) for a in [f"experiment={EXP}", *OVERRIDES])
# The eval sets a generate/judge job (one per arm) handles, as one quoted Hydra override.
EVAL_SETS_OVERRIDE = shlex.quote(f"eval_sets=[{','.join(EVAL_SETS)}]")


def arm_kind(arm):
    """Arm kind without composing Hydra: ft_* arms are fine-tuned, the rest are prompting baselines."""
    return "finetune" if arm.startswith("ft_") else "baseline"


FT_ARMS = [a for a in ARMS if arm_kind(a) == "finetune"]


wildcard_constraints:
    arm="|".join(ARMS) if ARMS else "NO_ARMS",


# Content-based config triggers (rbiqa.stamps), written only in the main process: cluster jobs re-parse
# this file and must not touch stamps or mtimes under the scheduler's feet.
if workflow.is_main_process:
    write_stamps(EXP, ARMS, OVERRIDES)
    if config.get("freshen", True):
        from rbiqa.freshen import freshen

        freshen()


def stamp(stage, arm="all"):
    return P.stamp(stage, arm).as_posix()


def log_path(name):
    return f"logs/{EXP}/{name}.log"


def bench_path(name):
    return f"benchmarks/results/{EXP}/{name}.tsv"


# The base model of this experiment, known at DAG time (composition is offline and takes ~0.2 s).
MODEL_NAME = _compose([f"experiment={EXP}", *OVERRIDES]).model.name
MODEL_MANIFEST = (P.model_dir(MODEL_NAME) / "manifest.json").as_posix()


# Input functions of evaluate_generate.smk
@lru_cache(maxsize=None)
def _generate_arm_kind(arm):
    """arm.kind from the composed arm config: only fewshot/rag arms read the training file."""
    return _compose([f"experiment={EXP}", f"arm={arm}", *OVERRIDES]).arm.kind


def generate_inputs(wildcards):
    inputs = {
        "eval_sets": [P.eval_set_path(e).as_posix() for e in EVAL_SETS],
        "model": MODEL_MANIFEST,
        "stamp": stamp("generate", wildcards.arm),
    }
    if arm_kind(wildcards.arm) == "finetune":
        adapter = P.adapter_dir(wildcards.arm)
        inputs["adapter"] = (adapter / "adapter_model.safetensors").as_posix()
        inputs["adapter_config"] = (adapter / "adapter_config.json").as_posix()
    elif _generate_arm_kind(wildcards.arm) in ("fewshot", "rag"):
        inputs["train"] = P.CLEAN_TRAIN.as_posix()
    return inputs


# Input functions of report.smk
def _posix(paths):
    return [p.as_posix() for p in paths]


def stats_scope():
    """Hydra overrides that pin the stats run to exactly the judgments this rule lists."""
    arms = ",".join(ARMS)
    sets = ",".join(EVAL_SETS)
    return " ".join(
        shlex.quote(o) for o in (f"stats.arms=[{arms}]", f"stats.eval_sets=[{sets}]")
    )


def lineage_inputs():
    return _posix(
        [
            P.RAW_MANIFEST,
            P.SPLIT_MANIFEST,
            P.SPLIT_REPORT,
            P.REPHRASE_MANIFEST,
            P.CLEAN_MANIFEST,
            P.CLEAN_REPORT,
            P.CONTAMINATION,
        ]
    )


def paper_sources():
    sections = sorted((P.PAPER / "sections").glob("*.tex"))
    return _posix([P.PAPER / "main.tex", P.PAPER / "refs.bib", *sections])
