# Config loading, derived wildcards and helpers shared by every rule file.
import os
import shlex
import sys

from snakemake.utils import validate

from rbiqa import paths as P
from rbiqa.stamps import write_stamps

validate(config, "../schemas/pipeline.schema.yaml")

# Rules call `python -m rbiqa.<stage>`: make that the interpreter running Snakemake (the project's venv)
# for local jobs and, through sbatch's exported environment, for SLURM jobs, activated or not.
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


def arm_kind(arm):
    """Arm kind without composing Hydra: ft_* arms are fine-tuned, the rest are prompting baselines."""
    return "finetune" if arm.startswith("ft_") else "baseline"


FT_ARMS = [a for a in ARMS if arm_kind(a) == "finetune"]


wildcard_constraints:
    arm="|".join(ARMS) if ARMS else "NO_ARMS",
    eval_set="|".join(EVAL_SETS),


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
from rbiqa.config import compose as _compose

MODEL_NAME = _compose([f"experiment={EXP}", *OVERRIDES]).model.name
MODEL_MANIFEST = (P.model_dir(MODEL_NAME) / "manifest.json").as_posix()
