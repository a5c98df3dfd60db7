"""The LLM result cache: canonical keys, persistence across processes/reopen, failures never stored."""

import pytest

from rbiqa.llm import ResultCache, cache_key
from rbiqa.llm.base import InvalidResponseError, is_transient, parse_json_response


def test_key_is_canonical_and_sensitive():
    a = cache_key(backend="gemini", model="m", prompt_sha256="p", temperature=0.5, text="Q?", k=3)
    assert a == cache_key(k=3, text="Q?", temperature=0.5, prompt_sha256="p", model="m", backend="gemini")
    assert a != cache_key(backend="gemini", model="m", prompt_sha256="p", temperature=0.5, text="Q?", k=2)
    assert a != cache_key(backend="gemini", model="m2", prompt_sha256="p", temperature=0.5, text="Q?", k=3)
    assert len(a) == 64 and "Q?" not in a


def test_persists_and_counts(tmp_path):
    with ResultCache(tmp_path / "c") as c:
        assert c.get("k1") is None
        c.set("k1", {"rephrasings": ["a", "é"]})
        assert c.get("k1") == {"rephrasings": ["a", "é"]}
    with ResultCache(tmp_path / "c") as c:  # a new process would see the same
        assert "k1" in c and c.get("k1") == {"rephrasings": ["a", "é"]}
        assert c.stats() == {"hits": 1, "misses": 0, "writes": 0, "entries": 1}


def test_refuses_to_cache_failures(tmp_path):
    with ResultCache(tmp_path / "c") as c, pytest.raises(ValueError, match="never cached"):
        c.set("k", None)


def test_parse_json_response():
    from pydantic import BaseModel

    class M(BaseModel):
        x: int

    assert parse_json_response('```json\n{"x": 1}\n```', M).x == 1
    for bad in ("", "not json", '{"x": "one"}', '{"y": 1}'):
        with pytest.raises(InvalidResponseError):
            parse_json_response(bad, M)
    assert is_transient(InvalidResponseError("x")) and not is_transient(ValueError("x"))


@pytest.mark.parametrize(
    ("code", "transient"), [(429, True), (408, True), (500, True), (503, True), (400, False), (403, False)]
)
def test_genai_errors_classified(code, transient):
    from google.genai import errors

    cls = errors.ServerError if code >= 500 else errors.ClientError
    exc = cls(code, {"error": {"code": code, "message": "m", "status": "S"}})
    assert is_transient(exc) is transient
