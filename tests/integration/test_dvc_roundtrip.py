"""DVC round trip on the tiny pipeline:
run → dvc push → fresh clone → dvc pull → the reviewer command rebuilds only stats/figures/report.
Also: a real config change still reruns from the judge, a corrupted remote object is caught on pull, an
interrupted push can be retried without loss, and the API key never enters an artifact.

The pipeline rephrases and judges through the real Gemini client against the local stub
(tests/stubs/rehearsal_responder.py answers), with the key under a custom `api_key_env` and the stub
echoing the auth header back in the error body of every third item; afterwards the key appears nowhere in
the workspace, the clones or the DVC remote (#14, secrets).
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, make_workspace, run_cmd
from tests.integration.test_secret_canary import CANARY, ENV, echo_some, leaks
from tests.stubs.gemini_stub import GeminiStub
from tests.stubs.rehearsal_responder import respond

# Part of CI: the tiny pipeline, push, three fresh clones and pulls take ~5 min on 2 cores.
pytestmark = pytest.mark.slow

# the key under a custom variable name: redaction must learn that name from the config
API_ENV = {ENV: CANARY}
DVC = [str(Path(sys.executable).parent / "dvc")]
EXPENSIVE = {"download_data", "fetch_model", "split", "rephrase", "clean", "train", "generate", "judge"}
DVC_FILES = (".dvc/config", ".dvc/.gitignore", "dvc.yaml", ".dvcignore", ".gitignore")


def rules_run(log: str) -> set[str]:
    return set(re.findall(r"^(?:local)?rule (\w+):", log, flags=re.M)) - {"all"}


def git(ws: Path, *args: str):
    return run_cmd(["git", "-c", "user.email=ci@rbiqa", "-c", "user.name=ci", *args], cwd=ws)


def api_overrides(url: str) -> list[str]:
    """Rephrase and judge through the Gemini client at the stub, with quick retries (faults are echoes)."""
    out = []
    for group in ("rephrase", "judge"):
        out += [f"{group}=gemini", f"{group}.base_url={url}", f"{group}.api_key_env={ENV}"]
        out += [f"{group}.retry.{k}={v}" for k, v in (("max_attempts", 2), ("initial_s", 0.01),
                                                     ("max_s", 0.02), ("jitter_s", 0.0))]  # fmt: skip
    return out


@pytest.fixture(scope="module")
def stub():
    with GeminiStub(responder=respond, default_fault=echo_some) as s:
        yield s


@pytest.fixture(scope="module")
def snakemake(stub):
    """The same command for the origin and every clone: the stub's URL is part of the stamped config."""
    overrides = "overrides=" + json.dumps(api_overrides(stub.url))
    return [sys.executable, "-m", "snakemake", "--cores", "2", "--config", "experiment=tiny", overrides]


@pytest.fixture(scope="module")
def origin(tmp_path_factory, stub, snakemake):
    root = tmp_path_factory.mktemp("dvc")
    ws = make_workspace(root / "origin", with_model=True)
    for rel in DVC_FILES:
        src = REPO / rel
        dst = ws / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dst)
    git(ws, "init", "-q")
    git(ws, "add", "-A")
    git(ws, "commit", "-qm", "workspace")
    remote = root / "remote"
    run_cmd(snakemake, cwd=ws, timeout=1800, env=API_ENV)
    assert stub.total > 0, "the pipeline never called the stub"
    add_remote(ws, "ci", remote)
    run_cmd([*DVC, "commit", "-f", "pipeline"], cwd=ws, timeout=600)
    git(ws, "add", "dvc.lock")
    git(ws, "commit", "-qm", "artifacts")
    run_cmd([*DVC, "push"], cwd=ws, timeout=600)
    return {"root": root, "ws": ws, "remote": remote, "stub": stub}


def add_remote(ws: Path, name: str, url: Path, default: bool = True) -> None:
    """As `make dvc-remote` does: a local-config remote that re-hashes what it downloads."""
    run_cmd([*DVC, "remote", "add", "--local", "-f", *(["-d"] if default else []), name, str(url)], cwd=ws)
    run_cmd([*DVC, "remote", "modify", "--local", name, "verify", "true"], cwd=ws)


def fresh_clone(origin, name: str) -> Path:
    dest = origin["root"] / name
    run_cmd(["git", "clone", "-q", str(origin["ws"]), str(dest)], cwd=origin["root"])
    add_remote(dest, "ci", origin["remote"])
    return dest


def test_pull_then_regenerate_does_not_retrain(origin, snakemake):
    clone = fresh_clone(origin, "reviewer")
    run_cmd([*DVC, "pull"], cwd=clone, timeout=600)
    assert (clone / "results/ft_k1/adapter/adapter_model.safetensors").exists()
    assert not (clone / "paper/report.pdf").exists()  # the PDF is regenerated, never pulled
    proc = run_cmd(snakemake, cwd=clone, timeout=900)
    ran = rules_run(proc.stdout + proc.stderr)
    assert not ran & EXPENSIVE, f"reviewer path reran expensive rules: {sorted(ran & EXPENSIVE)}"
    assert {"stats", "figures", "report"} <= ran
    assert (clone / "paper/report.pdf").stat().st_size > 10_000

    # A real change to the judge config reruns judge onwards, and not training or generation.
    cfg = clone / "conf/judge/gemini.yaml"
    text, n = re.subn(r"^temperature: [\d.]+", "temperature: 0.3", cfg.read_text(), flags=re.M)
    assert n == 1, "conf/judge/gemini.yaml has no temperature key to change"
    cfg.write_text(text)
    dry = run_cmd([*snakemake, "-n"], cwd=clone, timeout=300)
    planned = rules_run(dry.stdout + dry.stderr)
    assert "judge" in planned and "report" in planned
    assert not planned & {"train", "generate", "rephrase", "clean"}


def test_corrupted_remote_object_is_detected_on_pull(origin):
    remote_copy = origin["root"] / "remote-corrupt"
    shutil.copytree(origin["remote"], remote_copy)
    objects = sorted(p for p in remote_copy.rglob("*") if p.is_file() and not p.name.endswith(".dir"))
    victim = max(objects, key=lambda p: p.stat().st_size)
    victim.write_bytes(b"corrupted" + victim.read_bytes()[9:])
    clone = fresh_clone(origin, "corrupt")
    add_remote(clone, "ci", remote_copy)
    proc = run_cmd([*DVC, "pull"], cwd=clone, check=False, timeout=600)
    assert proc.returncode != 0
    assert re.search(r"corrupt|hash|checksum|failed", proc.stdout + proc.stderr, re.I)


def test_interrupted_push_can_be_retried(origin):
    remote2 = origin["root"] / "remote-partial"
    run_cmd([*DVC, "push", "-r", "ci"], cwd=origin["ws"], timeout=600)  # idempotent no-op
    shutil.copytree(origin["remote"], remote2)
    objects = sorted(p for p in remote2.rglob("*") if p.is_file())
    listings = [p for p in objects if p.name.endswith(".dir")]
    files = [p for p in objects if not p.name.endswith(".dir")]
    # What a push killed half-way leaves: some file objects, and no directory listing (.dir) whose files
    # are not all there, since DVC uploads a listing only after its files. (With a listing present, DVC
    # takes the whole directory as pushed and would not notice the gap.)
    for p in [*listings, *files[::2]]:
        p.unlink()
    add_remote(origin["ws"], "partial", remote2, default=False)
    status = run_cmd([*DVC, "status", "-c", "-r", "partial"], cwd=origin["ws"], timeout=300)
    assert "missing" in status.stdout or "new" in status.stdout
    run_cmd([*DVC, "push", "-r", "partial"], cwd=origin["ws"], timeout=600)
    status = run_cmd([*DVC, "status", "-c", "-r", "partial"], cwd=origin["ws"], timeout=300)
    assert "in sync" in status.stdout.lower()
    clone = fresh_clone(origin, "after-retry")
    add_remote(clone, "partial", remote2, default=False)
    run_cmd([*DVC, "pull", "-r", "partial"], cwd=clone, timeout=600)
    assert (clone / "results/ft_k1/adapter/adapter_model.safetensors").exists()


def test_secret_never_enters_artifacts(origin):
    """The canary went out on every request and came back in error bodies, yet is written nowhere:
    not in the workspace (logs/, .snakemake/, .stamps/, data/, results/, paper/, ...), the clones, or
    the DVC remote."""
    stub = origin["stub"]
    assert {r.headers.get("x-goog-api-key") for r in stub.requests} == {CANARY}
    assert stub.faults_injected()["echo_auth_400"] > 0
    judged = [p for p in (origin["ws"] / "results").rglob("judgments/*.jsonl")]
    assert judged, "no judgments written"
    assert leaks(origin["root"]) == []
