"""Shared fixtures: the repo root, and throwaway copies of the workflow to run stages in."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CALIBRATION_CSV = SHARED / "calibration" / "seed_judgments_dev.csv"
BIN = Path(sys.executable).parent
# What a workspace copy needs to run stages and snakemake (outputs are created inside the copy).
WORKFLOW_FILES = ("Snakefile", "conf", "workflow", "profiles", "paper", "data/sample", "src")


def make_workspace(dest: Path, with_model: bool = False) -> Path:
    for name in WORKFLOW_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(
                src, dest / name, ignore=shutil.ignore_patterns("build", "*.pdf", "__pycache__", "*.egg-info")
            )
        elif src.exists():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    if with_model:
        # reuse the converted base model (a 40 s GGUF conversion) when the main checkout has one
        for rel in ("data/models", "data/cache/wheels"):
            if (REPO / rel).exists():
                shutil.copytree(REPO / rel, dest / rel, symlinks=True)
    return dest


def run_cmd(args, cwd: Path, timeout: int = 600, env: dict | None = None, check: bool = True):
    full_env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    if (Path(cwd) / "src" / "rbiqa").is_dir():
        # a workspace runs its own copy of the package (rbiqa is an editable install of the checkout):
        # the stage code hashes in its stamps must not change when the checkout is edited meanwhile
        full_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(Path(cwd) / "src"), os.environ.get("PYTHONPATH")) if p
        )
    full_env.update(env or {})
    proc = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{args} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return make_workspace(tmp_path / "ws")


@pytest.fixture
def calibration_csv() -> Path:
    if not CALIBRATION_CSV.exists():
        pytest.skip(f"calibration data not found at {CALIBRATION_CSV} (needs ../shared beside the repo)")
    return CALIBRATION_CSV
