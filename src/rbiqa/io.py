"""JSONL and hashing helpers shared by every stage.

Writes are atomic (temp file + rename) so a killed job never leaves a half-written artifact that a
later run, or `dvc push`, could mistake for a finished one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError


class InputError(ValueError):
    """Bad input that the user must fix: raised with a message that says how."""


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_path(path: str | Path) -> str:
    """Hash of a file, or of a directory as the sorted (relative name, file hash) list."""
    p = Path(path)
    if p.is_file():
        return sha256_file(p)
    if not p.is_dir():
        raise FileNotFoundError(f"cannot hash missing path {p}")
    h = hashlib.sha256()
    for f in sorted(x for x in p.rglob("*") if x.is_file()):
        h.update(f.relative_to(p).as_posix().encode())
        h.update(sha256_file(f).encode())
    return h.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def stable_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


@contextmanager
def atomic_write(path: str | Path, mode: str = "w"):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as f:
            yield f
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; artifacts are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, obj: Any) -> None:
    with atomic_write(path) as f:
        json.dump(obj, f, indent=2, sort_keys=True, ensure_ascii=False, default=str)
        f.write("\n")


def read_json(path: str | Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


M = TypeVar("M", bound=BaseModel)


def read_validated(path: str | Path, model: type[M]) -> M:
    """A JSON file one stage wrote and another reads, checked against its schema (rbiqa.files).

    One reader for every such file, so that a file written by an older or different stage fails here,
    with the file and the field named, rather than as a KeyError deep inside the reader."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} not found: run the stage that writes it ({model.__name__}) first")
    try:
        raw = read_json(path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: not readable as JSON ({e})") from e
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(map(str, err['loc'])) or '<file>'}: {err['msg']}" for err in e.errors()[:5]
        )
        raise InputError(f"{path}: not a valid {model.__name__}: {problems}") from e


def write_jsonl(path: str | Path, rows: Iterable[dict], ensure_ascii: bool = False) -> int:
    """ensure_ascii=True writes any string, even one with lone surrogates, as escapes that read back the same."""
    n = 0
    with atomic_write(path) as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=ensure_ascii, default=str))
            f.write("\n")
            n += 1
    return n


def iter_jsonl(path: str | Path) -> Iterator[dict]:
    """Yield rows; a line that is not a JSON object raises InputError naming file and line."""
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{path}:{lineno}: not valid JSON ({e.msg})") from e
            if not isinstance(row, dict):
                raise InputError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            yield row


def read_jsonl(path: str | Path) -> list[dict]:
    return list(iter_jsonl(path))
