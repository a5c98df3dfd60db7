"""Provenance manifests, and the secret scrubbing that every persisted config goes through.

Each stage writes one manifest per job. It records what the job read and wrote by content hash. That
lets `rbiqa.freshen` restore a consistent mtime order after `dvc pull` (which does not keep mtimes),
and lets the report's lineage appendix be generated rather than typed.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from rbiqa.files import Manifest
from rbiqa.io import sha256_path, write_json
from rbiqa.stages import STAGES

# Pipeline order of the stages (rbiqa.stages); freshen walks manifests in this order.
STAGE_ORDER = {name: s.order for name, s in STAGES.items()}

TRACKED_LIBS = (
    "torch",
    "transformers",
    "peft",
    "trl",
    "bitsandbytes",
    "accelerate",
    "datasets",
    "hydra-core",
    "snakemake",
    "dvc",
    "google-genai",
    "datasketch",
    "presidio-analyzer",
    "statsmodels",
    "scipy",
    "numpy",
    "pandas",
    "seaborn",
    "bm25s",
    "scikit-learn",
    "rbiqa",
)

SECRET_ENV_VARS = ("GOOGLE_API_KEY", "GEMINI_API_KEY", "OPENAI_API_KEY", "HF_TOKEN")
# "token" only as a whole word or suffix: hf_token, access_token; not max_new_tokens.
_SECRET_KEY = re.compile(r"(api[_-]?key|(^|_)token$|secret|password|credential)", re.I)
REDACTED = "***redacted***"


# Names of env vars that hold secrets, beyond SECRET_ENV_VARS: every `api_key_env` a composed config
# (or a client built from one) points at. The one place redaction learns its variable names.
_CONFIG_SECRET_ENV_VARS: set[str] = set()


def api_key_env_names(cfg: Any) -> set[str]:
    """Every `api_key_env` value found anywhere in a (nested) config."""
    found: set[str] = set()

    def _walk(x: Any) -> None:
        if isinstance(x, Mapping):
            for k, v in x.items():
                if str(k) == "api_key_env" and isinstance(v, str) and v.strip():
                    found.add(v.strip())
                else:
                    _walk(v)
        elif isinstance(x, list | tuple):
            for v in x:
                _walk(v)

    _walk(cfg)
    return found


def register_secret_env(*names_or_cfg: Any) -> None:
    """Add env var names (strings) or every `api_key_env` in a config to the set redaction covers."""
    for x in names_or_cfg:
        if isinstance(x, str):
            if x.strip():
                _CONFIG_SECRET_ENV_VARS.add(x.strip())
        elif x is not None:
            _CONFIG_SECRET_ENV_VARS.update(api_key_env_names(x))


def secret_env_names() -> tuple[str, ...]:
    return tuple(dict.fromkeys([*SECRET_ENV_VARS, *sorted(_CONFIG_SECRET_ENV_VARS)]))


def secret_values() -> list[str]:
    return [v for k in secret_env_names() if (v := os.environ.get(k, "").strip()) and len(v) >= 4]


def scrub(obj: Any) -> Any:
    """Redact secret-looking keys and any literal secret value found in the environment.

    The variables searched are the fixed SECRET_ENV_VARS plus every `api_key_env` named in `obj`
    itself (it is usually the resolved config) or registered earlier by a client."""
    try:
        register_secret_env(obj)
    except Exception:  # a config too odd to walk still gets the fixed names
        pass
    secrets = secret_values()

    def _walk(x: Any, key: str | None = None) -> Any:
        if isinstance(x, Mapping):
            return {k: _walk(v, str(k)) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [_walk(v) for v in x]
        if key is not None and _SECRET_KEY.search(key) and x not in (None, "", False):
            # keep the *name* of the env var a config points at, never a value
            if isinstance(x, str) and x.isupper() and x.replace("_", "").isalnum():
                return x
            return REDACTED
        if isinstance(x, str):
            for s in secrets:
                x = x.replace(s, REDACTED)
        return x

    return _walk(obj)


def git_sha() -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for lib in TRACKED_LIBS:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            continue
    return out


def hash_paths(paths: Iterable[str | Path]) -> dict[str, str]:
    return {Path(p).as_posix(): sha256_path(p) for p in paths if Path(p).exists()}


def build_manifest(
    stage: str,
    config: Any,
    inputs: Iterable[str | Path],
    outputs: Iterable[str | Path],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest as the dict that is written, built through rbiqa.files.Manifest, the model that
    its readers (freshen, the lineage appendix) validate it with."""
    if stage not in STAGE_ORDER:
        raise ValueError(f"unknown stage {stage!r}; add it to rbiqa.stages.STAGES")
    m = Manifest(
        stage=stage,
        stage_order=STAGE_ORDER[stage],
        created_unix=round(time.time(), 3),
        git_sha=git_sha(),
        command=" ".join(Path(sys.argv[0]).name.split() + sys.argv[1:]),
        platform=platform.platform(),
        versions=library_versions(),
        config=config,
        inputs=hash_paths(inputs),
        outputs=hash_paths(outputs),
        extra=dict(extra or {}),
    )
    return scrub(m.model_dump())


def write_manifest(
    path: str | Path,
    stage: str,
    config: Any,
    inputs: Iterable[str | Path],
    outputs: Iterable[str | Path],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the manifest last, after every output exists, so its hashes describe the final files."""
    m = build_manifest(stage, config, inputs, outputs, extra)
    missing = [str(p) for p in outputs if not Path(p).exists()]
    if missing:
        raise FileNotFoundError(f"{stage}: outputs missing when writing manifest: {missing}")
    write_json(path, m)
    return m
