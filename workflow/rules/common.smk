# Config loading, derived wildcards and helpers shared by every rule file.
import functools
import os
import shlex
import sys

from snakemake.utils import validate

from rbiqa import paths as P
from rbiqa import stages as S
from rbiqa.config import compose as _compose
from rbiqa.stamps import write_stamps
from rbiqa.study import load_study

validate(config, "../schemas/pipeline.schema.yaml")


# Rules call `python -m rbiqa.<stage>`: make that the interpreter running Snakemake (the project's venv)
# for local jobs and, through sbatch's exported environment, for SLURM jobs, activated or not.
envvars:
    "PATH",


os.environ["PATH"] = os.pathsep.join(
    [os.path.dirname(sys.executable), os.environ.get("PATH", "")]
)

EXP = config["experiment"]
OVERRIDES = list(config.get("overrides", []))
# Hydra arguments every stage gets: the experiment (scale) and any user overrides.
HYDRA = " ".join(shlex.quote(a) for a in [f"experiment={EXP}", *OVERRIDES])
# The experiment's composed config (offline, ~0.2 s): the study (arms, their kinds, eval sets) and the
# base model are read from it, never restated here.
CFG = _compose([f"experiment={EXP}", *OVERRIDES])
STUDY = load_study(CFG)
ARMS = STUDY.arm_names
EVAL_SETS = list(STUDY.eval_sets)
FT_ARMS = STUDY.ft_arms
# eval sets whose generations also carry the teacher-forced reference loss (read by stats)
NLL_SETS = [e for e in CFG.generate.get("reference_loss_sets") or [] if e in EVAL_SETS]
# The eval sets a generate/judge job (one per arm) handles, as one quoted Hydra override.
EVAL_SETS_OVERRIDE = shlex.quote(f"eval_sets=[{','.join(EVAL_SETS)}]")


wildcard_constraints:
    arm="|".join(ARMS) if ARMS else "NO_ARMS",


# Content-based config triggers (rbiqa.stamps), written only in the main process: cluster jobs re-parse
# this file and must not touch stamps or mtimes under the scheduler's feet.
if workflow.is_main_process:
    write_stamps(EXP, ARMS, OVERRIDES)
    if config.get("freshen", True):
        from rbiqa.freshen import freshen

        freshen()


@functools.cache
def arm_config(arm):
    """An arm's composed config (its conf/arm file overrides train.* and generate.*), for input functions."""
    return _compose([f"experiment={EXP}", f"arm={arm}", *OVERRIDES])


def train_inputs(wildcards):
    """A trained arm's inputs (rbiqa.stages.train_inputs), with the pools its train.mix draws on."""
    mix = arm_config(wildcards.arm).train.mix
    pools = [pool for pool, share in mix.items() if share]
    return S.for_rule(S.train_inputs(STUDY.spec(wildcards.arm), pools, MODEL_DIR))


def res(rule_name, key):
    """What a rule's jobs ask the scheduler for, from the experiment's conf/resources/ group."""
    return CFG.resources[rule_name][key]


def stamp(stage, arm="all"):
    return P.stamp(stage, arm).as_posix()


def log_path(name):
    return f"logs/{EXP}/{name}.log"


def bench_path(name):
    return f"benchmarks/results/{EXP}/{name}.tsv"


# The base model of this experiment, known at DAG time.
MODEL_NAME = CFG.model.name
MODEL_DIR = P.model_dir(MODEL_NAME)
MODEL_MANIFEST = (MODEL_DIR / "manifest.json").as_posix()


# Longest generate jobs first, so that the last one does not run alone on an idle box: retrieval and
# few-shot prompts are the longest, measured (benchmarks/results/e2e_default.md) at about 1.7x a plain
# prompt's time per answer; an adapter adds one. Training (priority 10) still goes before all of them.
GENERATE_PRIORITY = {"rag": 3, "fewshot": 2, "base": 0}


def generate_priority(wildcards):
    spec = STUDY.spec(wildcards.arm)
    return GENERATE_PRIORITY[spec.prompt] + (spec.adapter_arm is not None)


# Input functions of evaluate_generate.smk
def generate_inputs(wildcards):
    return S.for_rule(
        S.generate_inputs(STUDY.spec(wildcards.arm), EVAL_SETS, MODEL_DIR)
    )


# Input functions of mine.smk
def mine_inputs(wildcards):
    """What the arm's generate job reads for the mining set, and what the judge reads to judge it."""
    judge = S.judge_inputs(CFG.judge, wildcards.arm, [P.TRAIN_MINING])
    return S.for_rule(
        {
            **S.generate_inputs(STUDY.spec(wildcards.arm), [P.TRAIN_MINING], MODEL_DIR),
            "deciders": judge["deciders"],
            "judge_stamp": judge["stamp"],
        }
    )
