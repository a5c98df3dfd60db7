"""Cluster submission through profiles/slurm, against a real one-node SLURM cluster on 127.0.0.1.

The module starts the cluster with tests/cluster/slurm_up.sh and stops it with slurm_down.sh; both need root.
It checks, for a small self-contained workflow (TOY_SNAKEFILE) and for the repository's own targets
(REAL_TARGETS):

(a) the jobs really went through SLURM: each non-local job was submitted with a SLURM job id, ran inside
    that SLURM job, and squeue knows it as COMPLETED; localrules did not go through SLURM; and a rule listed
    in the profile's GPU set-resources got its GPU request;
(b) the outputs are byte-identical (sha256) to a local run of the same targets with profiles/default;
(c) a failing rule fails the run: a non-zero exit, the rule named in the log, its SLURM job FAILED, no job of
    the run left pending or running, and no hang (every run is bounded by `timeout`);
(d) a run interrupted by that `timeout` (SIGINT) cancels its SLURM jobs instead of orphaning them.

Every Snakemake run works on a fresh copy of its workflow in a tmp dir, so runs never share .snakemake locks
or outputs. Timings (cluster start, job turnaround) go to <RBIQA_SLURM_DIR>/test_timings.json.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SLURM_PROFILE = REPO / "profiles" / "slurm"
LOCAL_PROFILE = REPO / "profiles" / "default"
SCRATCH = Path(os.environ.get("RBIQA_SLURM_DIR", "/tmp/rbiqa-slurm"))

# Repository outputs (relative to the repo root) that the real-workflow test builds on SLURM and locally and
# compares by sha256. Point this at deterministic outputs only: manifests hold timestamps, so leave them out.
# Every target must be buildable offline from the files the repository ships (data/sample, conf/, src/).
# While the Snakefile still includes rule files that do not exist yet, that test skips and says which.
REAL_TARGETS: list[str] = [
    "data/interim/split/train.jsonl",
    "data/interim/split/val.jsonl",
    "data/interim/split/test_unseen.jsonl",
    "data/interim/split/test_paraphrase_sources.jsonl",
    "data/interim/split/split_report.json",
]

# Wall-clock limits (s) for one Snakemake run. A SLURM run of the toy workflow takes about a minute here.
TOY_SLURM_TIMEOUT_S = 300
TOY_LOCAL_TIMEOUT_S = 120
REAL_SLURM_TIMEOUT_S = 600
REAL_LOCAL_TIMEOUT_S = 600
SLURM_UP_TIMEOUT_S = 180
# The run whose `explode` job hangs is stopped by timeout after this long; `explode` is submitted ~20-40 s in.
HANG_TIMEOUT_S = 75

# Job states in which a SLURM job still holds or waits for resources.
ACTIVE_STATES = "PENDING,RUNNING,CONFIGURING,COMPLETING,SUSPENDED,REQUEUED,RESIZING,SIGNALING,STAGE_OUT"

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(
        os.geteuid() != 0,
        reason="needs root: tests/cluster/slurm_up.sh installs SLURM/munge and starts their daemons",
    ),
]

# A three-stage workflow in the shape of the real one: `simulate` writes data with a seeded RNG, `train`
# fits it (and is named like the real GPU rule, so the profile's `set-resources: train:` applies),
# `explode` fails on purpose when config fail=true (and hangs when hang=true), and `report` is a localrule. Rules whose `log:` ends in
# .env record the SLURM job id they ran under ("none" outside SLURM).
TOY_SNAKEFILE = textwrap.dedent(
    r"""
    import json
    import os
    import random

    FAIL = str(config.get("fail", "false")).lower() == "true"
    HANG = str(config.get("hang", "false")).lower() == "true"
    SEED = int(config.get("seed", 1234))
    N = int(config.get("n", 500))

    localrules: all, report


    def provenance(path):
        with open(path, "w") as f:
            f.write(f"SLURM_JOB_ID={os.environ.get('SLURM_JOB_ID', 'none')}\n")


    rule all:
        input:
            "results/report.txt",
            "results/explode.ok",


    rule simulate:
        output:
            "data/xy.csv",
        log:
            "logs/simulate.env",
        params:
            seed=SEED,
            n=N,
        threads: 1
        resources:
            mem_mb=300,
            runtime=5,
        run:
            rng = random.Random(params.seed)
            with open(output[0], "w") as f:
                f.write("x,y\n")
                for _ in range(params.n):
                    x = rng.uniform(0.0, 10.0)
                    f.write(f"{x:.6f},{2.5 * x - 1.0 + rng.gauss(0.0, 0.5):.6f}\n")
            provenance(log[0])


    rule train:
        input:
            rules.simulate.output,
        output:
            "results/model.json",
        log:
            "logs/train.env",
        threads: 1
        resources:
            mem_mb=300,
            runtime=5,
        run:
            with open(input[0]) as f:
                rows = [tuple(map(float, line.split(","))) for line in f.read().splitlines()[1:]]
            n = len(rows)
            mx = sum(x for x, _ in rows) / n
            my = sum(y for _, y in rows) / n
            sxx = sum((x - mx) ** 2 for x, _ in rows)
            sxy = sum((x - mx) * (y - my) for x, y in rows)
            slope = sxy / sxx
            model = {"n": n, "slope": round(slope, 9), "intercept": round(my - slope * mx, 9)}
            with open(output[0], "w") as f:
                json.dump(model, f, indent=1, sort_keys=True)
                f.write("\n")
            provenance(log[0])


    rule explode:
        input:
            rules.simulate.output,
        output:
            "results/explode.ok",
        log:
            "logs/explode.log",
        params:
            fail=FAIL,
            hang=HANG,
        threads: 1
        resources:
            mem_mb=300,
            runtime=5,
        shell:
            "echo SLURM_JOB_ID=${{SLURM_JOB_ID:-none}} > {log}; "
            "if [ {params.fail} = True ]; then "
            "echo 'explode: deliberate failure (config fail=true)' >> {log}; exit 3; fi; "
            "if [ {params.hang} = True ]; then sleep 900; fi; "
            "wc -l < {input} > {output}"


    rule report:
        input:
            model="results/model.json",
            data="data/xy.csv",
        output:
            "results/report.txt",
        log:
            "logs/report.env",
        run:
            model = json.load(open(input.model))
            with open(output[0], "w") as f:
                f.write(f"n={model['n']} slope={model['slope']:.4f} intercept={model['intercept']:.4f}\n")
            provenance(log[0])
    """
).lstrip()

TOY_OUTPUTS = ["data/xy.csv", "results/model.json", "results/explode.ok", "results/report.txt"]
TOY_SLURM_RULES = {"simulate", "train", "explode"}

SUBMITTED_RE = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (\S+)\)")
RUN_ID_RE = re.compile(r"SLURM run ID: (\S+)")

TIMINGS: dict[str, object] = {}


# ---- helpers --------------------------------------------------------------------------------------------


@dataclass
class Run:
    """One finished Snakemake invocation."""

    workdir: Path
    cmd: list[str]
    returncode: int
    wall_s: float
    log: str
    run_id: str | None = None
    # SLURM job id -> rule name, from the plugin's "has been submitted with SLURM jobid" lines
    slurm_jobs: dict[str, str] = field(default_factory=dict)

    def tail(self, n: int = 60) -> str:
        return "\n".join(self.log.splitlines()[-n:])

    def describe(self) -> str:
        return f"command: {' '.join(self.cmd)}\ncwd: {self.workdir}\nexit: {self.returncode}\n--- log tail ---\n{self.tail()}"


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without SLURM job variables, site settings or a user's Snakemake profile."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLURM_", "SBATCH_", "SRUN_", "RBIQA_SLURM_")) and k != "SNAKEMAKE_PROFILE"
    }
    # The job step runs sys.executable, and shell commands should find the same environment's tools.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    env.update(extra)
    return env


def snakemake(workdir: Path, profile: Path, args: list[str], timeout_s: int, env: dict[str, str]) -> Run:
    """Run Snakemake in `workdir`, bounded by `timeout`. SIGINT first, so Snakemake cancels its SLURM jobs."""
    cmd = [
        "timeout", "-s", "INT", "-k", "30", str(timeout_s),
        sys.executable, "-m", "snakemake", "--workflow-profile", str(profile), "--nocolor", *args,
    ]  # fmt: skip
    t0 = time.monotonic()
    proc = subprocess.run(
        cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    run = Run(workdir, cmd, proc.returncode, time.monotonic() - t0, proc.stdout)
    (workdir / "snakemake.console.log").write_text(proc.stdout)
    m = RUN_ID_RE.search(proc.stdout)
    run.run_id = m.group(1) if m else None
    for _, slurm_id, slurm_log in SUBMITTED_RE.findall(proc.stdout):
        rule = next((p[len("rule_") :] for p in Path(slurm_log).parts if p.startswith("rule_")), "?")
        run.slurm_jobs[slurm_id] = rule
    return run


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def digests(root: Path, rel_paths: list[str]) -> dict[str, str]:
    missing = [p for p in rel_paths if not (root / p).is_file()]
    assert not missing, f"outputs missing under {root}: {missing}"
    return {p: sha256(root / p) for p in rel_paths}


def scontrol_job(jobid: str) -> dict[str, str]:
    """`scontrol show job -o` as a dict. Finished jobs stay visible for MinJobAge (300 s)."""
    out = subprocess.run(
        ["scontrol", "show", "job", "-o", jobid], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    return dict(tok.split("=", 1) for tok in out.split() if "=" in tok)


def squeue_states(run_id: str, states: str = "all") -> dict[str, str]:
    """SLURM job id -> state for the jobs of one Snakemake run (the plugin names every job by the run id)."""
    out = subprocess.run(
        ["squeue", "-h", "--name", run_id, "--states", states, "-o", "%i|%T"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    return dict(line.split("|", 1) for line in out.split())


def cancel_run(run: Run) -> None:
    """Cleanup after a failed assertion: cancel whatever the run left behind, by job id."""
    if run.run_id:
        leftover = list(squeue_states(run.run_id, ACTIVE_STATES))
        if leftover:
            subprocess.run(["scancel", *leftover], timeout=30, check=False)


def seconds_between(a: str, b: str) -> float:
    return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()


def job_timings(run: Run) -> list[dict[str, object]]:
    rows = []
    for jobid, rule in sorted(run.slurm_jobs.items(), key=lambda kv: int(kv[0])):
        info = scontrol_job(jobid)
        rows.append(
            {
                "rule": rule,
                "slurm_jobid": jobid,
                "state": info.get("JobState"),
                "queue_wait_s": seconds_between(info["SubmitTime"], info["StartTime"]),
                "run_s": seconds_between(info["StartTime"], info["EndTime"]),
            }
        )
    return rows


def slurmctld_running() -> bool:
    pidfile = SCRATCH / "run" / "slurmctld.pid"
    try:
        pid = int(pidfile.read_text().strip())
        return Path(f"/proc/{pid}/comm").read_text().strip() == "slurmctld"
    except (OSError, ValueError):
        return False


def new_toy_workdir(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    workdir = tmp_path_factory.mktemp(name)
    (workdir / "Snakefile").write_text(TOY_SNAKEFILE)
    return workdir


# Left out of a copy of the repository: environments, caches and VCS data wherever they are, and every
# pipeline output (paths relative to the repository root).
COPY_IGNORE_NAMES = {
    ".git",
    ".venv",
    ".snakemake",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
    "__pycache__",
}
COPY_IGNORE_PATHS = {
    ".stamps", ".whl", "outputs", "multirun", "results", "logs", "data/raw", "data/interim", "data/processed",
    "data/models", "data/cache", "paper/build", "benchmarks/results",
}  # fmt: skip


def copy_repo(dest: Path) -> Path:
    def ignore(directory: str, names: list[str]) -> set[str]:
        rel = Path(directory).relative_to(REPO)
        return {
            n
            for n in names
            if n in COPY_IGNORE_NAMES or n.endswith(".egg-info") or (rel / n).as_posix() in COPY_IGNORE_PATHS
        }

    shutil.copytree(REPO, dest, ignore=ignore, symlinks=True)
    return dest


# ---- fixtures -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def slurm_cluster():
    """Bring up the one-node cluster for this module and take it down afterwards (unless it was already up)."""
    was_running = slurmctld_running()
    t0 = time.monotonic()
    up = subprocess.run(
        ["timeout", "-k", "10", str(SLURM_UP_TIMEOUT_S), "bash", str(HERE / "slurm_up.sh")],
        capture_output=True,
        text=True,
    )
    if up.returncode != 0:
        pytest.fail(f"slurm_up.sh failed (exit {up.returncode}):\n{up.stdout}\n{up.stderr}", pytrace=False)
    TIMINGS["cluster_start_s"] = round(time.monotonic() - t0, 3)
    TIMINGS["cluster_was_already_running"] = was_running
    TIMINGS["slurm_up_output"] = up.stdout.strip()
    # The job step drops SLURM_CONF, so the config must be at the default path.
    assert Path("/etc/slurm/slurm.conf").resolve() == (SCRATCH / "etc" / "slurm.conf").resolve()
    nodes = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30).stdout
    assert nodes.split() == ["idle"], f"cluster not idle at start: {nodes!r}"
    yield
    SCRATCH.mkdir(parents=True, exist_ok=True)
    (SCRATCH / "test_timings.json").write_text(json.dumps(TIMINGS, indent=1) + "\n")
    print(f"\ncluster test timings ({SCRATCH / 'test_timings.json'}):\n{json.dumps(TIMINGS, indent=1)}")
    if not was_running:
        down = subprocess.run(
            ["timeout", "-k", "10", "120", "bash", str(HERE / "slurm_down.sh")],
            capture_output=True,
            text=True,
        )
        assert down.returncode == 0, f"slurm_down.sh failed:\n{down.stdout}\n{down.stderr}"


@pytest.fixture(scope="module")
def toy_local(tmp_path_factory) -> Run:
    workdir = new_toy_workdir(tmp_path_factory, "toy_local")
    run = snakemake(workdir, LOCAL_PROFILE, [], TOY_LOCAL_TIMEOUT_S, clean_env())
    assert run.returncode == 0, f"local run of the toy workflow failed\n{run.describe()}"
    assert not run.slurm_jobs, "the local profile submitted SLURM jobs"
    TIMINGS["toy_local_wall_s"] = round(run.wall_s, 1)
    return run


@pytest.fixture(scope="module")
def toy_slurm(slurm_cluster, tmp_path_factory) -> Run:
    workdir = new_toy_workdir(tmp_path_factory, "toy_slurm")
    # Send the GPU rules to the test cluster's second partition, as a site would with its GPU partition.
    env = clean_env(RBIQA_SLURM_GPU_PARTITION="gpu")
    run = snakemake(workdir, SLURM_PROFILE, [], TOY_SLURM_TIMEOUT_S, env)
    try:
        assert run.returncode == 0, f"SLURM run of the toy workflow failed\n{run.describe()}"
        TIMINGS["toy_slurm_wall_s"] = round(run.wall_s, 1)
        TIMINGS["toy_slurm_jobs"] = job_timings(run)
    except BaseException:
        cancel_run(run)
        raise
    return run


@pytest.fixture(scope="module")
def toy_slurm_failing(slurm_cluster, tmp_path_factory) -> Run:
    workdir = new_toy_workdir(tmp_path_factory, "toy_slurm_failing")
    run = snakemake(workdir, SLURM_PROFILE, ["--config", "fail=true"], TOY_SLURM_TIMEOUT_S, clean_env())
    TIMINGS["toy_slurm_failing_wall_s"] = round(run.wall_s, 1)
    yield run
    cancel_run(run)


@pytest.fixture(scope="module")
def toy_slurm_hanging(slurm_cluster, tmp_path_factory):
    workdir = new_toy_workdir(tmp_path_factory, "toy_slurm_hanging")
    run = snakemake(workdir, SLURM_PROFILE, ["--config", "hang=true"], HANG_TIMEOUT_S, clean_env())
    TIMINGS["toy_slurm_interrupted_wall_s"] = round(run.wall_s, 1)
    yield run
    cancel_run(run)


# ---- toy workflow ---------------------------------------------------------------------------------------


def test_toy_jobs_went_through_slurm(toy_slurm: Run):
    run = toy_slurm
    assert run.run_id, f"no 'SLURM run ID' in the log: was the slurm executor used?\n{run.describe()}"
    assert sorted(run.slurm_jobs.values()) == sorted(TOY_SLURM_RULES), (
        f"expected one SLURM job per non-local rule {sorted(TOY_SLURM_RULES)}, got {run.slurm_jobs}\n"
        f"{run.describe()}"
    )
    # squeue (the profile's status command) knows every job of the run, by the run id, as COMPLETED.
    states = squeue_states(run.run_id)
    assert states == dict.fromkeys(run.slurm_jobs, "COMPLETED"), f"squeue states {states}"
    # Each job ran inside the SLURM job it was submitted as.
    for jobid, rule in run.slurm_jobs.items():
        log = run.workdir / "logs" / ("explode.log" if rule == "explode" else f"{rule}.env")
        assert log.read_text().splitlines()[0] == f"SLURM_JOB_ID={jobid}", f"{rule}: {log.read_text()!r}"
        # The profile keeps SLURM logs of successful jobs, under logs/slurm.
        assert list((run.workdir / "logs" / "slurm" / f"rule_{rule}").rglob(f"{jobid}.log")), rule
    # The localrule ran on the submitting host, outside SLURM.
    assert (run.workdir / "logs" / "report.env").read_text() == "SLURM_JOB_ID=none\n"


def test_toy_slurm_outputs_match_local_run(toy_slurm: Run, toy_local: Run):
    on_slurm = digests(toy_slurm.workdir, TOY_OUTPUTS)
    local = digests(toy_local.workdir, TOY_OUTPUTS)
    assert on_slurm == local
    # The local run really ran outside SLURM, so the comparison is between two execution paths.
    assert (toy_local.workdir / "logs" / "train.env").read_text() == "SLURM_JOB_ID=none\n"


def test_profile_resources_reach_sbatch(toy_slurm: Run):
    """profiles/slurm's GPU set-resources, its partition variable and the rules' own resources reach SLURM."""
    by_rule = {rule: jobid for jobid, rule in toy_slurm.slurm_jobs.items()}
    train = scontrol_job(by_rule["train"])
    assert "gpu:1" in train.get("TresPerJob", "") + train.get("TresPerNode", ""), (
        f"train asked for no GPU: {train}"
    )
    simulate = scontrol_job(by_rule["simulate"])
    assert "gpu" not in simulate.get("TresPerJob", "") + simulate.get("TresPerNode", ""), simulate
    # RBIQA_SLURM_GPU_PARTITION moves the GPU rule only; the others get the cluster's default partition.
    assert train["Partition"] == "gpu", train
    assert simulate["Partition"] == "debug", simulate
    for info in (train, simulate):
        # mem_mb=300, runtime=5 and threads=1, as declared by the rules.
        assert info["MinMemoryNode"] == "300M", info
        assert info["TimeLimit"] == "00:05:00", info
        assert info["NumCPUs"] == "1", info


def test_failing_rule_fails_cleanly(toy_slurm_failing: Run):
    run = toy_slurm_failing
    assert run.returncode not in (0, 124, 137), (
        f"a failing rule must fail the run without hitting the timeout\n{run.describe()}"
    )
    assert run.wall_s < TOY_SLURM_TIMEOUT_S
    assert "Error in rule explode" in run.log, run.describe()
    # --show-failed-logs prints the failing job's log, so the reason is on the console.
    assert "explode: deliberate failure (config fail=true)" in run.log, run.describe()
    assert run.run_id, run.describe()
    by_rule = {rule: jobid for jobid, rule in run.slurm_jobs.items()}
    assert "explode" in by_rule, f"explode was never submitted\n{run.describe()}"
    states = squeue_states(run.run_id)
    assert states[by_rule["explode"]] == "FAILED", states
    # keep-going is false: no new job starts once the failure is registered, the jobs already running
    # finish, and then Snakemake exits. Nothing of this run is left queued or running.
    assert squeue_states(run.run_id, ACTIVE_STATES) == {}, states
    assert set(states.values()) <= {"COMPLETED", "FAILED"}, states
    assert "Exiting because a job execution failed" in run.log, run.describe()
    assert not (run.workdir / "results" / "explode.ok").exists()


def test_interrupted_run_cancels_its_slurm_jobs(toy_slurm_hanging: Run):
    """A run stopped by the `timeout -s INT` wrapper (as CI does) cancels its SLURM jobs: none is orphaned."""
    run = toy_slurm_hanging
    assert run.returncode == 124, f"the hanging run should have been stopped by timeout\n{run.describe()}"
    by_rule = {rule: jobid for jobid, rule in run.slurm_jobs.items()}
    assert "explode" in by_rule, (
        f"explode was not submitted within {HANG_TIMEOUT_S} s, so nothing was left to cancel; "
        f"raise HANG_TIMEOUT_S\n{run.describe()}"
    )
    assert run.run_id, run.describe()
    assert squeue_states(run.run_id, ACTIVE_STATES) == {}, squeue_states(run.run_id)
    assert squeue_states(run.run_id)[by_rule["explode"]] == "CANCELLED", squeue_states(run.run_id)


# ---- the repository's own workflow ---------------------------------------------------------------------


def missing_includes() -> list[str]:
    snakefile = (REPO / "Snakefile").read_text()
    included = re.findall(r"""^include:\s*["']([^"']+)["']""", snakefile, flags=re.M)
    return [p for p in included if not (REPO / p).is_file()]


def test_real_targets_on_slurm_match_local(slurm_cluster, tmp_path_factory):
    assert REAL_TARGETS, "REAL_TARGETS is empty: name at least one repository output"
    missing = missing_includes()
    if missing:
        pytest.skip(f"the real workflow is not assembled yet: the Snakefile includes missing {missing}")
    env_for = {}
    runs = {}
    for kind, profile, timeout_s in (
        ("local", LOCAL_PROFILE, REAL_LOCAL_TIMEOUT_S),
        ("slurm", SLURM_PROFILE, REAL_SLURM_TIMEOUT_S),
    ):
        workdir = copy_repo(tmp_path_factory.mktemp(f"real_{kind}") / "repo")
        # The copy's own sources, not the editable install's, are what the jobs import.
        env_for[kind] = clean_env(PYTHONPATH=str(workdir / "src"))
        dry = snakemake(workdir, profile, ["-n", *REAL_TARGETS], 300, env_for[kind])
        assert dry.returncode == 0, f"dry run of REAL_TARGETS failed\n{dry.describe()}"
        run = snakemake(workdir, profile, REAL_TARGETS, timeout_s, env_for[kind])
        try:
            assert run.returncode == 0, f"{kind} run of REAL_TARGETS failed\n{run.describe()}"
        except BaseException:
            cancel_run(run)
            raise
        runs[kind] = run
        TIMINGS[f"real_{kind}_wall_s"] = round(run.wall_s, 1)

    slurm, local = runs["slurm"], runs["local"]
    assert not local.slurm_jobs
    assert slurm.run_id and slurm.slurm_jobs, (
        f"no job of the real workflow went through SLURM\n{slurm.describe()}"
    )
    states = squeue_states(slurm.run_id)
    assert set(states.values()) == {"COMPLETED"} and set(states) == set(slurm.slurm_jobs), states
    TIMINGS["real_slurm_jobs"] = job_timings(slurm)
    assert digests(slurm.workdir, REAL_TARGETS) == digests(local.workdir, REAL_TARGETS)
