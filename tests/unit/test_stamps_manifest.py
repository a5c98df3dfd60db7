"""Config stamps change only with the config; manifests never carry secrets."""

from __future__ import annotations

import os

from rbiqa.config import compose, to_container
from rbiqa.manifest import REDACTED, build_manifest, scrub
from rbiqa.stamps import write_stamps


def test_stamps_rewrite_only_on_change(tmp_path, monkeypatch):
    from tests.conftest import REPO

    monkeypatch.setenv("RBIQA_CONF_DIR", str(REPO / "conf"))
    monkeypatch.chdir(tmp_path)
    first = write_stamps("default", ["base", "ft_k3"])
    assert first["changed"] and not first["unchanged"]
    mtime = os.path.getmtime(".stamps/judge/all.yaml")
    second = write_stamps("default", ["base", "ft_k3"])
    assert not second["changed"]
    assert os.path.getmtime(".stamps/judge/all.yaml") == mtime
    third = write_stamps("default", ["base", "ft_k3"], ["seed=99"])
    changed = set(third["changed"])
    assert ".stamps/split/all.yaml" in changed and ".stamps/train/ft_k3.yaml" in changed
    assert ".stamps/judge/all.yaml" not in changed  # the judge does not depend on the seed


def test_arm_overrides_compose():
    cfg = compose(["experiment=paper", "arm=ft_r8"])
    assert cfg.model.name == "qwen2_5_3b" and cfg.data.name == "rbi_hf"
    assert cfg.arm.name == "ft_r8" and cfg.arm.n_rephrasings == 3
    assert cfg.train.lora.r == 8 and cfg.train.lora.alpha == 16
    assert compose([]).model.name == "smollm2_135m"


def test_secrets_never_reach_manifests(monkeypatch):
    secret = "AIza-very-secret-value-123"
    monkeypatch.setenv("GOOGLE_API_KEY", secret)
    cfg = {"judge": {"api_key": secret, "api_key_env": "GOOGLE_API_KEY", "note": f"key={secret}"}}
    m = build_manifest("judge", cfg, [], [])
    text = repr(m)
    assert secret not in text
    assert m["config"]["judge"]["api_key"] == REDACTED
    assert m["config"]["judge"]["api_key_env"] == "GOOGLE_API_KEY"  # the variable's name is fine
    assert scrub({"token": None})["token"] is None
    kept = scrub({"max_new_tokens": 96, "hf_token": "hf_abcdef", "access_token": "x1y2z3w4"})
    assert kept == {"max_new_tokens": 96, "hf_token": REDACTED, "access_token": REDACTED}
    assert secret not in repr(to_container(compose([f"+leak={secret}"])))


def test_code_hash_tracks_the_stage_sources(tmp_path, monkeypatch):
    import rbiqa.stamps as st

    pkg = tmp_path / "pkg"
    (pkg / "train").mkdir(parents=True)
    (pkg / "train" / "a.py").write_text("x = 1\n")
    (pkg / "split.py").write_text("y = 1\n")
    monkeypatch.setattr(st, "PACKAGE_DIR", pkg)
    before = {s: st.code_hash(s) for s in ("train", "split")}
    (pkg / "train" / "a.py").write_text("x = 2\n")
    assert st.code_hash("train") != before["train"]
    assert st.code_hash("split") == before["split"]  # other stages are unaffected
