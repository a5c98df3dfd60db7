"""Checkpoints that a killed job can resume from, and only those.

The Trainer writes a checkpoint file by file (adapter, optimizer, scheduler, RNG, trainer state), and
`transformers.trainer_utils.get_last_checkpoint` picks the highest `checkpoint-N` folder by name. A job
killed in the middle of a save leaves a folder that name-based resume would take: with the optimizer or
the trainer state missing, the Trainer then restarts from step 0 or with a fresh optimizer, and the
result silently differs from the run that was asked for. So every checkpoint gets a seal, written last
and atomically once the Trainer's save has returned (`on_save`): the sha256 of each of its files, plus
what the Trainer does not keep and the run's log needs (the rows recorded so far and TRL's token count).
Resume takes the newest checkpoint whose seal matches its files and deletes the others, which would also
confuse the Trainer's checkpoint rotation.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from rbiqa.io import read_json, sha256_file, write_json

log = logging.getLogger(__name__)

SEAL = "rbiqa_seal.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
# Test-only: the optimizer step whose checkpoint save pauses after the adapter is written (before the
# optimizer and trainer state), so a test can kill the job mid-save deterministically instead of racing it.
PAUSE_IN_SAVE_ENV = "RBIQA_TEST_PAUSE_IN_SAVE"
PAUSED_FILE = "paused_in_save"  # written into the checkpoint folder when the pause begins


def _files(ckpt: Path) -> dict[str, str]:
    return {
        p.relative_to(ckpt).as_posix(): sha256_file(p)
        for p in sorted(ckpt.rglob("*"))
        if p.is_file() and p.name not in (SEAL, PAUSED_FILE)
    }


def seal(ckpt: Path, state: dict[str, Any]) -> None:
    write_json(
        ckpt / SEAL, {"step": int(_CHECKPOINT.match(ckpt.name).group(1)), "files": _files(ckpt), **state}
    )


def read_seal(ckpt: Path) -> dict[str, Any] | None:
    """The seal of a complete checkpoint; None when it is missing, torn, or its files changed."""
    try:
        s = read_json(ckpt / SEAL)
    except (OSError, ValueError):
        return None
    return s if isinstance(s, dict) and s.get("files") == _files(ckpt) else None


def last_complete(run_dir: Path) -> Path | None:
    """The newest sealed checkpoint under run_dir; unsealed (partial) checkpoint folders are deleted."""
    found = sorted(
        (int(m.group(1)), p) for p in run_dir.iterdir() if p.is_dir() and (m := _CHECKPOINT.match(p.name))
    )
    best = None
    for _, p in found:
        if read_seal(p) is None:
            log.warning("deleting %s: a save that did not finish (no seal, or files differ from it)", p)
            shutil.rmtree(p)
        else:
            best = p
    return best


class CheckpointSeal(TrainerCallback):
    """Seals each checkpoint once the Trainer has finished writing it (see the module docstring)."""

    def __init__(self, trainer, recorder) -> None:
        self.trainer, self.recorder = trainer, recorder

    def on_save(self, args, state, control, **kwargs):
        ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if ckpt.is_dir():
            seal(
                ckpt,
                {
                    "log_rows": self.recorder.rows,
                    "total_train_tokens": int(getattr(self.trainer, "_total_train_tokens", 0)),
                },
            )


def pause_if_asked(output_dir: str, step: int) -> None:
    """The test-only pause of PAUSE_IN_SAVE_ENV: mark the folder, then wait to be killed."""
    if os.environ.get(PAUSE_IN_SAVE_ENV) == str(step):
        Path(output_dir, PAUSED_FILE).touch()
        log.warning("%s=%d: pausing mid-save for a kill test", PAUSE_IN_SAVE_ENV, step)
        while True:
            time.sleep(1)
