"""freshen restores mtime order for content-consistent jobs only."""

from __future__ import annotations

import os
import time

from rbiqa.freshen import HashCache, freshen
from rbiqa.manifest import write_manifest


def _age(path, seconds_ago):
    t = time.time() - seconds_ago
    os.utime(path, (t, t))


def _pipeline(tmp_path):
    """stage A: a.txt -> b.txt (manifest mb); stage B: b.txt + cfg -> c.txt (manifest mc)."""
    d = tmp_path / "data"
    d.mkdir()
    (d / "a.txt").write_text("a")
    (d / "b.txt").write_text("b")
    write_manifest(d / "b.manifest.json", "split", {}, [d / "a.txt"], [d / "b.txt"])
    (d / "cfg.yaml").write_text("x: 1\n")
    res = tmp_path / "results"
    res.mkdir()
    (res / "c.txt").write_text("c")
    write_manifest(res / "c.manifest.json", "train", {}, [d / "b.txt", d / "cfg.yaml"], [res / "c.txt"])
    return d, res


def test_scrambled_mtimes_are_restored(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    d, res = _pipeline(tmp_path)
    # what `dvc pull` does: outputs older than inputs, in arbitrary order
    _age(res / "c.txt", 300)
    _age(d / "b.txt", 200)
    out = freshen((tmp_path / "data", tmp_path / "results"), HashCache(tmp_path / "cache.json"))
    assert len(out["touched"]) == 2 and not out["stale"]
    assert os.path.getmtime(d / "b.txt") > os.path.getmtime(d / "a.txt")
    assert os.path.getmtime(res / "c.txt") > os.path.getmtime(d / "b.txt")
    assert os.path.getmtime(res / "c.txt") > os.path.getmtime(d / "cfg.yaml")
    # and nothing is dated in the future beyond a few steps: a job run next must write newer outputs
    assert max(os.path.getmtime(p) for p in (d / "b.txt", res / "c.txt")) < time.time() + 0.1
    # a second pass has nothing to do
    again = freshen((tmp_path / "data", tmp_path / "results"), HashCache(tmp_path / "cache.json"))
    assert not again["touched"] and len(again["consistent"]) == 2


def test_changed_input_is_left_stale(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    d, res = _pipeline(tmp_path)
    _age(res / "c.txt", 300)
    (d / "cfg.yaml").write_text("x: 2\n")  # a real config change
    out = freshen((tmp_path / "data", tmp_path / "results"), HashCache(tmp_path / "cache.json"))
    assert [p for p in out["stale"] if p.endswith("c.manifest.json")]
    assert os.path.getmtime(res / "c.txt") < os.path.getmtime(d / "cfg.yaml")  # so Snakemake reruns it


def test_changed_output_is_left_stale(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    d, res = _pipeline(tmp_path)
    (res / "c.txt").write_text("tampered")
    _age(res / "c.txt", 300)
    out = freshen((tmp_path / "data", tmp_path / "results"), HashCache(tmp_path / "cache.json"))
    assert any(p.endswith("c.manifest.json") for p in out["stale"])
