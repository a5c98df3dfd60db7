"""Chat-completions client for OpenAI-compatible servers (vLLM, Ollama, llama.cpp server, OpenAI).

Plain httpx rather than the `openai` package: the request is one POST, and owning it keeps the retry
and timeout behaviour identical to the Gemini client (rbiqa.llm.base). The API key is optional because
local servers usually need none.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

import httpx
from pydantic import BaseModel

from rbiqa.llm.base import (
    CallStats,
    InvalidResponseError,
    LLMConfigError,
    NonJSONBodyError,
    NonRetryableHTTPError,
    RetryingJsonClient,
    RetryPolicy,
    require_api_key,
    status_is_retryable,
)
from rbiqa.manifest import register_secret_env

ResponseFormat = Literal["json_schema", "json_object", "none"]


class OpenAICompatibleJsonClient(RetryingJsonClient):
    backend = "openai_compatible"

    def __init__(
        self,
        model: str,
        base_url: str,
        api_key_env: str | None = None,
        api_key_required: bool = False,
        response_format: ResponseFormat = "json_schema",
        timeout_s: float = 60.0,
        concurrency: int = 4,
        retry: RetryPolicy | Mapping[str, Any] | None = None,
        stats: CallStats | None = None,
    ):
        super().__init__(model, concurrency, retry, stats)
        if not base_url:
            raise LLMConfigError("openai_compatible needs `base_url`, e.g. http://127.0.0.1:8000/v1 for vLLM")
        if response_format not in ("json_schema", "json_object", "none"):
            raise LLMConfigError(
                f"response_format must be json_schema|json_object|none, got {response_format!r}"
            )
        headers = {"Content-Type": "application/json"}
        key = None
        self.api_key_env = api_key_env or None
        if api_key_env:
            register_secret_env(api_key_env)  # redact its value like the fixed names
            key = (
                require_api_key(api_key_env, "openai_compatible")
                if api_key_required
                else os.environ.get(api_key_env, "").strip() or None
            )
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self.base_url = (
            base_url  # as configured (recorded in manifests); requests go to it without a trailing /
        )
        self.response_format = response_format
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s)

    def _response_format(self, schema: type[BaseModel]) -> dict[str, Any] | None:
        if self.response_format == "json_schema":
            return {
                "type": "json_schema",
                "json_schema": {
                    "name": schema.__name__,
                    "schema": schema.model_json_schema(),
                    "strict": False,
                },
            }
        if self.response_format == "json_object":
            return {"type": "json_object"}
        return None

    async def _call_once(
        self, prompt: str, schema: type[BaseModel], system: str | None, temperature: float, seed: int | None
    ) -> str | None:
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": prompt}
        ]
        body: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": temperature}
        if seed is not None:
            body["seed"] = seed
        if (fmt := self._response_format(schema)) is not None:
            body["response_format"] = fmt
        resp = await self._http.post("/chat/completions", json=body)
        if resp.status_code >= 400:
            if status_is_retryable(resp.status_code):
                resp.raise_for_status()  # httpx.HTTPStatusError: retried by the policy
            raise NonRetryableHTTPError(resp.status_code, f"HTTP {resp.status_code}: {resp.text[:200]}")
        try:
            payload = resp.json()
        except ValueError as e:
            raise NonJSONBodyError(f"a 200 reply whose body is not JSON: {resp.text[:80]!r}") from e
        try:
            return payload["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as e:
            raise InvalidResponseError(f"not a chat-completions response: {resp.text[:120]!r}") from e

    async def aclose(self) -> None:
        await self._http.aclose()
