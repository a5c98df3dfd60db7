"""The Snakemake workflow: the whole DAG builds (default and paper, offline), lints clean, and the data
stages run for real on the sample corpus."""

from __future__ import annotations

import re
import sys

import pytest

from rbiqa.io import read_json, read_jsonl
from tests.conftest import REPO, make_workspace, run_cmd

SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def dry_run(ws, *extra):
    return run_cmd([*SNAKEMAKE, "-n", "--cores", "2", "--quiet", "rules", *extra], cwd=ws, timeout=300)


def test_dag_default_builds(workspace):
    out = dry_run(workspace).stdout
    for rule in ("download_data", "split", "fetch_model"):
        assert rule in out


def test_dag_paper_builds_offline(workspace):
    """`--config experiment=paper` must build the full DAG with no network at DAG time."""
    out = dry_run(workspace, "--config", "experiment=paper").stdout
    assert "download_data" in out
    stamp_dir = workspace / ".stamps" / "train"
    arms = {p.stem for p in stamp_dir.glob("ft_*.yaml")}
    assert {"ft_k0", "ft_k3", "ft_r8", "ft_lr5e-4", "ft_curriculum", "ft_k3_s3"} <= arms


def test_lint_passes():
    proc = run_cmd([*SNAKEMAKE, "--lint", "--cores", "1"], cwd=REPO, check=False, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_bad_pipeline_config_is_rejected(workspace):
    proc = run_cmd(
        [*SNAKEMAKE, "-n", "--cores", "1", "--config", 'overrides=["study.eval_sets=[nonsense]"]'],
        cwd=workspace,
        check=False,
        timeout=300,
    )
    assert proc.returncode != 0
    assert "nonsense" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_data_stages_run_for_real(tmp_path):
    ws = make_workspace(tmp_path / "ws", with_model=False)
    targets = ["data/interim/split/split_report.json", "data/models/smollm2_135m/manifest.json"]
    run_cmd([*SNAKEMAKE, "--cores", "2", *targets], cwd=ws, timeout=900)
    report = read_json(ws / "data/interim/split/split_report.json")
    assert report["leakage"]["shared_source_ids_total"] == 0
    raw = read_json(ws / "data/raw/download_report.json")
    assert raw["sets"]["qa"]["valid"] >= 300 and raw["sets"]["qa"]["quarantined"] == 0
    n = sum(report["counts"][s] for s in ("train", "val", "test_unseen", "unused"))
    assert n == raw["sets"]["qa"]["valid"]  # every source is in a split or listed as unused
    assert len(report["unused_source_ids"]) == report["counts"]["unused"]
    assert report["counts"]["train"] == 64  # split.max_train_sources
    assert len(read_jsonl(ws / "data/interim/split/test_paraphrase_sources.jsonl")) > 0
    model = read_json(ws / "data/models/smollm2_135m/manifest.json")
    assert (
        len(model["extra"]["gguf_sha256"]) == 64
        and (ws / "data/models/smollm2_135m/model.safetensors").exists()
    )
    # a rerun is a no-op
    again = run_cmd([*SNAKEMAKE, "-n", "--cores", "2", *targets], cwd=ws, timeout=300)
    assert "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.parametrize(
    ("experiment", "mem_mb", "runtime"),
    [("tiny", 8000, 30), ("paper", 48000, 360)],
)
def test_slurm_profile_asks_each_scale_for_its_own_resources(workspace, experiment, mem_mb, runtime):
    """What a train job asks sbatch for (--mem, -t, --gpus) comes from the experiment's conf/resources/
    group through profiles/slurm: the CPU scales ask for a CPU job's memory and time, paper for a GPU
    node's. The dry run shows the resources Snakemake hands the SLURM executor."""
    out = run_cmd(
        [*SNAKEMAKE, "-n", "--workflow-profile", str(workspace / "profiles" / "slurm"), "--config",
         f"experiment={experiment}"], cwd=workspace, timeout=300,
    ).stdout  # fmt: skip
    block = out[out.index("rule train:") :]
    resources = dict(
        kv.split("=", 1) for kv in re.search(r"resources: (.+)", block).group(1).split(", ") if "=" in kv
    )
    assert int(resources["mem_mb"]) == mem_mb and int(resources["runtime"]) == runtime
    assert resources["gpu"] == "1"  # profiles/slurm's set-resources: one GPU per train job by default


def _jobs(dry_run_out: str) -> dict[str, tuple[set[str], set[str]]]:
    """{rule: (inputs, outputs)} of the single-job rules of a verbose dry run."""
    jobs: dict[str, tuple[set[str], set[str]]] = {}
    rule = None
    for line in dry_run_out.splitlines():
        if m := re.match(r"(?:local)?rule (\w+):", line.strip()):
            rule = m.group(1)
            jobs.setdefault(rule, (set(), set()))
        elif rule and (m := re.match(r"\s+(input|output): (.*)", line)):
            jobs[rule][0 if m.group(1) == "input" else 1].update(m.group(2).split(", "))
    return jobs


def test_rules_declare_the_registry_files(workspace, monkeypatch):
    """The files a stage's rule is scheduled on are the ones rbiqa.stages lists, which its manifest
    records: the two can no longer drift apart."""
    from rbiqa import paths as P
    from rbiqa import stages as S
    from rbiqa.config import compose
    from rbiqa.study import load_study

    out = run_cmd([*SNAKEMAKE, "-n", "--forceall", "--cores", "2"], cwd=workspace, timeout=300).stdout
    jobs = _jobs(out)
    monkeypatch.chdir(workspace)
    cfg = compose(["experiment=default"])
    study = load_study(cfg)
    arms, sets = study.arm_names, list(study.eval_sets)
    nll = [e for e in cfg.generate.get("reference_loss_sets") or [] if e in sets]

    def names(files):
        # package files as the rules name them: this process imports rbiqa from the checkout, not from the
        # workspace, so they do not come out relative to it
        return {re.sub(r"^/.*?/(src/rbiqa/)", r"\1", p.as_posix()) for p in S.flat(files)}

    def _pools(arm):
        mix = compose(["experiment=default", f"arm={arm}"]).train.mix
        return [pool for pool, share in mix.items() if share]

    expected = {
        "download_data": (
            names(S.download_inputs(cfg.data)),
            names(S.download_outputs()) | {P.RAW_MANIFEST.as_posix()},
        ),
        "split": (names(S.split_inputs()), names(S.split_outputs()) | {P.SPLIT_MANIFEST.as_posix()}),
        "rephrase": (
            names(S.rephrase_inputs(cfg.rephrase)),
            names(S.rephrase_outputs()) | {P.REPHRASE_MANIFEST.as_posix()},
        ),
        "clean": (names(S.clean_inputs()), names(S.clean_outputs()) | {P.CLEAN_MANIFEST.as_posix()}),
        "stats": (names(S.stats_inputs(arms, sets, nll)), None),
        "figures": (names(S.figures_inputs(study.ft_arms)), None),
        "report": (names(S.report_inputs()), None),
        # one job per arm: the union over the arms of what the registry lists for each
        "train": (
            set().union(
                *(
                    names(S.train_inputs(study.spec(a), _pools(a), P.model_dir(cfg.model.name)))
                    for a in study.ft_arms
                )
            ),
            None,
        ),
        "generate": (
            set().union(
                *(names(S.generate_inputs(study.spec(a), sets, P.model_dir(cfg.model.name))) for a in arms)
            ),
            None,
        ),
        "judge": (set().union(*(names(S.judge_inputs(cfg.judge, a, sets)) for a in arms)), None),
    }
    for rule, (inputs, outputs) in expected.items():
        assert rule in jobs, rule
        if inputs is not None:
            assert jobs[rule][0] == inputs, rule
        if outputs is not None:
            assert jobs[rule][1] == outputs, rule
