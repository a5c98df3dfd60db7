"""Retry-After parsing and the wait that honours it; how failures are labelled and classified."""

from __future__ import annotations

import email.utils
import time
from types import SimpleNamespace

import httpx
import pytest
import tenacity

from rbiqa.llm.base import (
    InvalidResponseError,
    NonJSONBodyError,
    NonRetryableHTTPError,
    error_kind,
    is_transient,
    retry_after_s,
    wait_retry_after,
)


def http_error(code: int, headers: dict[str, str] | None = None) -> httpx.HTTPStatusError:
    req = httpx.Request("POST", "http://x/v1/chat/completions")
    resp = httpx.Response(code, headers=headers or {}, request=req)
    return httpx.HTTPStatusError("e", request=req, response=resp)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("7", 7.0), (" 0 ", 0.0), ("1.5", 1.5), ("-3", 0.0), ("soon", None), ("nan", None), (None, None)],
)
def test_retry_after_seconds(value, expected):
    exc = http_error(429, {"Retry-After": value} if value is not None else {})
    assert retry_after_s(exc) == expected


def test_retry_after_http_date_and_wrapped_responses():
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= retry_after_s(http_error(503, {"retry-after": date})) <= 31
    # google-genai keeps its (sometimes wrapped) response on APIError.response
    wrapped = SimpleNamespace(
        response=SimpleNamespace(_response=SimpleNamespace(headers={"retry-after": "4"}))
    )
    assert retry_after_s(wrapped) == 4.0
    assert retry_after_s(ValueError("no response")) is None and retry_after_s(None) is None


def _state(exc: BaseException, attempt: int = 1) -> tenacity.RetryCallState:
    state = tenacity.RetryCallState(tenacity.Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    state.set_exception((type(exc), exc, None))
    return state


def test_wait_is_the_longer_of_backoff_and_capped_retry_after():
    wait = wait_retry_after(tenacity.wait_fixed(0.5), cap_s=10)
    assert wait(_state(http_error(429, {"Retry-After": "3"}))) == 3
    assert wait(_state(http_error(429, {"Retry-After": "0"}))) == 0.5  # never sooner than the backoff
    assert wait(_state(http_error(429, {"Retry-After": "86400"}))) == 10  # a hostile header is capped
    assert wait(_state(http_error(500))) == 0.5


def test_error_kinds_and_transience():
    cases = {
        "non_json_body": NonJSONBodyError("html"),
        "invalid_response": InvalidResponseError("bad"),
        "connection": httpx.ReadError("reset"),
        "timeout": httpx.ReadTimeout("slow"),
        "http_429": http_error(429),
        "http_401": NonRetryableHTTPError(401, "HTTP 401"),
    }
    assert {kind: error_kind(e) for kind, e in cases.items()} == {k: k for k in cases}
    assert is_transient(NonJSONBodyError("html")) and is_transient(httpx.ReadError("reset"))
    assert not is_transient(NonRetryableHTTPError(401, "HTTP 401"))
