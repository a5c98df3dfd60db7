"""SIGKILL a real train job, rerun the same command, and get the uninterrupted run's adapter and log.

The rerun resumes automatically (train.resume: the newest sealed checkpoint of a run with the same
config and data; rbiqa.train.checkpoints). Two kills: one while the job is training, and one in the
middle of a checkpoint save (a test-only pause after the adapter is written and before the optimizer
and trainer state are), whose partial folder a name-based resume would have taken.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rbiqa.train.checkpoints import PAUSE_IN_SAVE_ENV, PAUSED_FILE, SEAL
from tests.unit._train_fixtures import make_data, tiny_model

REPO = Path(__file__).resolve().parents[2]
ARM = "ft_k1"
STEPS = 12
OVERRIDES = [
    f"arm={ARM}",
    "model.name=tiny",
    "model.dtype=float32",
    f"train.max_steps={STEPS}",
    "train.eval_steps=2",
    "train.logging_steps=1",
    "train.per_device_train_batch_size=2",
    "train.per_device_eval_batch_size=4",
    "train.quant.load_in_4bit=false",
    "train.learning_rate=1e-2",
    "train.warmup_ratio=0.0",
    "train.threads=1",
    "train.max_seq_len=1024",
    "train.save_total_limit=2",
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("kill_train"))


def project(root: Path) -> Path:
    make_data(root / "data" / "processed")
    return root


def command(model_dir: Path) -> list[str]:
    return [sys.executable, "-m", "rbiqa.train", f"model.path={model_dir.as_posix()}", *OVERRIDES]


def env(**extra: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k != PAUSE_IN_SAVE_ENV}
    return {**e, "RBIQA_CONF_DIR": str(REPO / "conf"), "PYTHONUNBUFFERED": "1", **extra}


def run_to_end(root: Path, model_dir: Path) -> dict:
    p = subprocess.run(command(model_dir), cwd=root, env=env(), capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads((adapter_dir(root) / "train_summary.json").read_text())


def adapter_dir(root: Path) -> Path:
    return root / "results" / ARM / "adapter"


def checkpoints(root: Path) -> Path:
    return root / "results" / ARM / "checkpoints"


def kill_when(root: Path, model_dir: Path, ready, **extra_env: str) -> None:
    """Start the job, SIGKILL it as soon as `ready()` holds, and check it died without outputs."""
    proc = subprocess.Popen(
        command(model_dir), cwd=root, env=env(**extra_env), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 300
    while not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-3000:]
    assert not (adapter_dir(root) / "adapter_model.safetensors").exists()  # nothing taken as done


def read_log(root: Path) -> list[dict[str, str]]:
    with open(adapter_dir(root) / "trainer_log.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def straight(model_dir, tmp_path_factory):
    root = project(tmp_path_factory.mktemp("straight"))
    return root, run_to_end(root, model_dir)


def assert_same_run(root: Path, straight_root: Path, summary: dict, straight_summary: dict) -> None:
    a = load_file(straight_root / "results" / ARM / "adapter" / "adapter_model.safetensors")
    b = load_file(adapter_dir(root) / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=1e-6, rtol=1e-5, msg=k)
    log_a, log_b = (
        read_log(straight_root),
        read_log(root),
    )
    assert [r["step"] for r in log_b] == [r["step"] for r in log_a] == [str(s) for s in range(1, STEPS + 1)]
    for col in ("epoch", "train_loss", "eval_paraphrase_loss", "eval_unseen_loss", "learning_rate"):
        for ra, rb in zip(log_a, log_b, strict=True):
            assert (ra[col] == "") == (rb[col] == ""), (col, ra["step"])
            if ra[col]:
                assert float(rb[col]) == pytest.approx(float(ra[col]), rel=1e-5), (col, ra["step"])
    assert all(float(r["tokens_per_s"]) > 0 for r in log_b)
    assert summary["global_step"] == STEPS
    assert summary["total_tokens"] == straight_summary["total_tokens"]  # counted across both processes
    assert summary["selection"] == straight_summary["selection"]
    assert not checkpoints(root).exists()  # keep_checkpoints=false: the scratch dir goes after success


def test_killed_while_training_resumes_from_its_last_checkpoint(model_dir, straight, tmp_path):
    root = project(tmp_path)
    first = checkpoints(root) / "checkpoint-2" / SEAL
    kill_when(root, model_dir, first.exists)
    sealed = sorted(int(p.parent.name.split("-")[1]) for p in checkpoints(root).glob(f"*/{SEAL}"))
    assert sealed and max(sealed) < STEPS

    summary = run_to_end(root, model_dir)
    assert summary["resumed_at_step"] == max(sealed)
    assert Path(summary["resumed_from"]).name == f"checkpoint-{max(sealed)}"
    assert_same_run(root, straight[0], summary, straight[1])


def test_killed_in_a_checkpoint_save_skips_the_partial_checkpoint(model_dir, straight, tmp_path):
    root = project(tmp_path)
    paused = checkpoints(root) / "checkpoint-4" / PAUSED_FILE
    kill_when(root, model_dir, paused.exists, **{PAUSE_IN_SAVE_ENV: "4"})
    partial = checkpoints(root) / "checkpoint-4"
    # the save stopped after the adapter: no optimizer, no trainer state, no seal
    assert (partial / "adapter_model.safetensors").exists()
    assert not (partial / "trainer_state.json").exists() and not (partial / SEAL).exists()
    assert (checkpoints(root) / "checkpoint-2" / SEAL).exists()

    summary = run_to_end(root, model_dir)
    assert summary["resumed_at_step"] == 2  # not the partial checkpoint-4
    assert_same_run(root, straight[0], summary, straight[1])


def test_a_checkpoint_whose_files_changed_is_not_resumed_from(tmp_path):
    """The seal lists each file's hash: a torn or swapped file makes the checkpoint partial."""
    from rbiqa.train.checkpoints import last_complete, seal

    for step in (2, 4):
        ck = tmp_path / f"checkpoint-{step}"
        ck.mkdir()
        (ck / "optimizer.pt").write_bytes(b"x" * step)
        seal(ck, {"log_rows": [], "total_train_tokens": 0})
    assert last_complete(tmp_path) == tmp_path / "checkpoint-4"
    (tmp_path / "checkpoint-4" / "optimizer.pt").write_bytes(b"torn")
    assert last_complete(tmp_path) == tmp_path / "checkpoint-2"
    assert not (tmp_path / "checkpoint-4").exists()
