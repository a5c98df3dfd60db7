"""Retry policy, error taxonomy and response validation shared by every JSON LLM client.

Retries are owned here (tenacity), not by the SDKs: one policy for every backend means the counts in the
reports mean the same thing whichever backend ran, and schema-invalid output is retried exactly like a
429 instead of silently becoming a wrong answer.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import tenacity
from pydantic import BaseModel, ValidationError

from rbiqa.manifest import REDACTED, register_secret_env, secret_values

log = logging.getLogger(__name__)

# HTTP statuses worth retrying: request timeout, rate limit, and every server-side failure.
RETRYABLE_STATUS = frozenset({408, 429})

try:  # google-genai uses aiohttp for async calls when it is installed
    import aiohttp

    _AIOHTTP_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError,)
except ImportError:  # pragma: no cover - aiohttp ships with google-genai's extras here
    _AIOHTTP_ERRORS = ()


class LLMConfigError(RuntimeError):
    """The backend cannot be used as configured (e.g. its API key is not set); says how to fix it."""


class MissingAPIKeyError(LLMConfigError):
    """The environment variable that should hold the backend's API key is not set."""

    def __init__(self, env_var: str, backend: str):
        super().__init__(
            f"the {backend} backend needs an API key in the environment variable {env_var}, which is not "
            f"set. Export it (`export {env_var}=...`), point `api_key_env` at the variable you use, or "
            "choose the offline backend (e.g. `rephrase=hf_local`)."
        )
        self.env_var = env_var
        self.backend = backend


def require_api_key(env_var: str, backend: str) -> str:
    """The key in `env_var`, read now (never stored in a config, manifest or cache); MissingAPIKeyError
    when it is not set."""
    register_secret_env(env_var)  # a custom `api_key_env` is redacted like the fixed names
    key = os.environ.get(env_var, "").strip()
    if not key:
        raise MissingAPIKeyError(env_var, backend)
    return key


class InvalidResponseError(ValueError):
    """The model answered, but not with JSON that satisfies the requested schema. Retried."""


class NonJSONBodyError(InvalidResponseError):
    """A 200 reply whose body is not the API's JSON at all (a proxy's HTML error page, an empty body).
    Retried: it says nothing about the request, and counting it apart from bad model output tells an
    operator which side failed."""


class NonRetryableHTTPError(RuntimeError):
    """A 4xx other than 408/429 from an OpenAI-style server: retrying would repeat the same mistake."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code  # read like google-genai's APIError.code (error kinds, the judge's fatal statuses)


def status_is_retryable(code: int | None) -> bool:
    return code is not None and (code in RETRYABLE_STATUS or 500 <= code < 600)


def is_transient(exc: BaseException) -> bool:
    """Whether a failed call may succeed if repeated: rate limits, 5xx, timeouts, dropped connections,
    and malformed or schema-invalid output (sampling may produce valid JSON next time)."""
    from google.genai import errors as genai_errors

    if isinstance(exc, genai_errors.APIError):
        return status_is_retryable(getattr(exc, "code", None))
    if isinstance(exc, httpx.HTTPStatusError):
        return status_is_retryable(exc.response.status_code)
    return isinstance(
        exc,
        (
            InvalidResponseError,
            httpx.TimeoutException,
            httpx.TransportError,
            asyncio.TimeoutError,
            TimeoutError,
            ConnectionError,
            *_AIOHTTP_ERRORS,
        ),
    )


def error_kind(exc: BaseException) -> str:
    """Short label for reports: 'http_429', 'http_500', 'timeout', 'connection', 'non_json_body',
    'invalid_response', ..."""
    code = getattr(exc, "code", None)
    if isinstance(exc, httpx.HTTPStatusError):
        code = exc.response.status_code
    if isinstance(code, int):
        return f"http_{code}"
    if isinstance(exc, NonJSONBodyError):
        return "non_json_body"
    if isinstance(exc, InvalidResponseError):
        return "invalid_response"
    if isinstance(exc, httpx.TimeoutException | asyncio.TimeoutError | TimeoutError):
        return "timeout"
    if isinstance(exc, (httpx.TransportError, ConnectionError, *_AIOHTTP_ERRORS)):
        return "connection"  # reset, refused, or closed without a reply
    return type(exc).__name__


def retry_after_s(exc: BaseException | None) -> float | None:
    """The wait a failed reply asked for in its Retry-After header (seconds, or an HTTP date), if any.

    Both clients keep the reply on the exception: httpx.HTTPStatusError.response, and google-genai's
    APIError.response (an aiohttp or httpx response, sometimes wrapped)."""
    resp = getattr(exc, "response", None)
    resp = getattr(resp, "_response", resp)
    headers = getattr(resp, "headers", None)
    value = headers.get("retry-after") if headers is not None else None
    if value is None:
        return None
    value = str(value).strip()
    try:
        seconds = float(value)  # RFC 9110 says whole seconds; a fraction costs nothing to accept
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return max(0.0, seconds) if seconds == seconds else None  # NaN is no instruction


def redact(text: str) -> str:
    """Error strings end up in reports and logs: strip any literal secret from them first."""
    for s in secret_values():
        text = text.replace(s, REDACTED)
    return text


def describe_error(exc: BaseException, limit: int = 300) -> str:
    return redact(f"{error_kind(exc)}: {exc}")[:limit]


@dataclass
class CallStats:
    """What the clients did: `requests` counts every HTTP attempt, so retries are visible."""

    requests: int = 0
    succeeded: int = 0
    retries: int = 0
    failed_items: int = 0
    retry_after_waits: int = 0  # retries that waited as long as the server's Retry-After asked
    errors: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "succeeded": self.succeeded,
            "retries": self.retries,
            "failed_items": self.failed_items,
            "retry_after_waits": self.retry_after_waits,
            "errors": dict(sorted(self.errors.items())),
        }


class wait_retry_after(tenacity.wait.wait_base):  # noqa: N801 (named like tenacity's own waits)
    """Wait at least what the server's Retry-After asked (up to `cap_s`), else `fallback`'s backoff.

    Retrying a 429 sooner than the server said only earns another 429 and burns an attempt. The cap
    keeps one hostile or broken header from stalling a stage for hours; past it, the retry goes out
    at the cap and counts as an attempt like any other."""

    def __init__(self, fallback: tenacity.wait.wait_base, cap_s: float):
        self.fallback = fallback
        self.cap_s = cap_s

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        backoff = self.fallback(retry_state)
        outcome = retry_state.outcome
        after = retry_after_s(outcome.exception() if outcome and outcome.failed else None)
        return backoff if after is None else max(backoff, min(after, self.cap_s))


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, or the server's Retry-After when it asks for longer (honoured up
    to `max_retry_after_s`); `max_attempts` includes the first call."""

    max_attempts: int = 6
    initial_s: float = 1.0
    max_s: float = 30.0
    jitter_s: float = 1.0
    max_retry_after_s: float = 120.0

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> RetryPolicy:
        cfg = dict(cfg or {})
        return cls(
            max_attempts=int(cfg.get("max_attempts", cls.max_attempts)),
            initial_s=float(cfg.get("initial_s", cls.initial_s)),
            max_s=float(cfg.get("max_s", cls.max_s)),
            jitter_s=float(cfg.get("jitter_s", cls.jitter_s)),
            max_retry_after_s=float(cfg.get("max_retry_after_s", cls.max_retry_after_s)),
        )

    def async_retrying(self, stats: CallStats | None = None) -> tenacity.AsyncRetrying:
        def _before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            if stats is not None:
                stats.retries += 1
                if retry_after_s(exc) is not None:
                    stats.retry_after_waits += 1
            log.debug(
                "retrying after %s in %.2fs (attempt %d)",
                exc and error_kind(exc),
                state.upcoming_sleep,
                state.attempt_number,
            )

        return tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(self.max_attempts),
            wait=wait_retry_after(
                tenacity.wait_exponential_jitter(
                    initial=self.initial_s, max=self.max_s, jitter=self.jitter_s
                ),
                self.max_retry_after_s,
            ),
            retry=tenacity.retry_if_exception(is_transient),
            before_sleep=_before_sleep,
            reraise=True,
        )


_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.S)


def parse_json_response(text: str | None, schema: type[BaseModel]) -> BaseModel:
    """Validate a model's text output against `schema`; tolerate a ```json fence, nothing else."""
    if text is None or not text.strip():
        raise InvalidResponseError("empty response")
    if m := _FENCE.match(text):
        text = m.group(1)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidResponseError(f"not JSON ({e.msg} at char {e.pos}): {text[:80]!r}") from e
    try:
        return schema.model_validate(data)
    except ValidationError as e:
        raise InvalidResponseError(f"schema {schema.__name__} violated: {e.errors()[:2]}") from e


class JsonLLMClient(Protocol):
    """A backend that turns a prompt into a validated pydantic object (retries included)."""

    backend: str
    model: str
    stats: CallStats

    async def generate_json(
        self,
        prompt: str,
        schema: type[BaseModel],
        *,
        system: str | None = None,
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> BaseModel: ...

    async def aclose(self) -> None: ...


class RetryingJsonClient:
    """Template for the concrete clients: they implement `_call_once` (one HTTP request -> raw text).

    The clients are built from config with hydra.utils.instantiate (`_target_` in conf/judge/*.yaml and
    conf/rephrase/*.yaml), so `retry` may arrive as the config's mapping rather than a RetryPolicy."""

    backend = "abstract"

    def __init__(
        self,
        model: str,
        concurrency: int,
        retry: RetryPolicy | Mapping[str, Any] | None,
        stats: CallStats | None,
    ):
        if concurrency < 1:
            raise LLMConfigError(f"concurrency must be >= 1, got {concurrency}")
        self.model = str(model)
        self.retry = retry if isinstance(retry, RetryPolicy) else RetryPolicy.from_config(retry)
        self.stats = stats if stats is not None else CallStats()
        self._concurrency = concurrency
        self._sem: asyncio.Semaphore | None = None

    async def _call_once(
        self, prompt: str, schema: type[BaseModel], system: str | None, temperature: float, seed: int | None
    ) -> str | None:
        raise NotImplementedError

    async def generate_json(
        self,
        prompt: str,
        schema: type[BaseModel],
        *,
        system: str | None = None,
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> BaseModel:
        if self._sem is None:  # created lazily so it binds to the running loop
            self._sem = asyncio.Semaphore(self._concurrency)
        try:
            async for attempt in self.retry.async_retrying(self.stats):
                with attempt:
                    async with self._sem:
                        self.stats.requests += 1
                        try:
                            text = await self._call_once(prompt, schema, system, temperature, seed)
                            result = parse_json_response(text, schema)
                        except Exception as e:
                            self.stats.errors[error_kind(e)] += 1
                            raise
                    self.stats.succeeded += 1
                    return result
        except Exception:
            self.stats.failed_items += 1
            raise
        raise AssertionError("unreachable: tenacity either returns or reraises")  # pragma: no cover

    async def aclose(self) -> None:  # pragma: no cover - overridden where there is something to close
        return None
