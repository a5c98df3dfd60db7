"""Gemini client over google-genai's async API with JSON-schema output.

The SDK's own retries are switched off (`HttpRetryOptions(attempts=1)`, which also disables its implicit
aiohttp reconnect loop) so that rbiqa.llm.base.RetryPolicy is the only retry layer and every attempt is
counted. `base_url` lets tests (and proxies) point the real SDK at another server.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from rbiqa.llm.base import (
    CallStats,
    InvalidResponseError,
    NonJSONBodyError,
    RetryingJsonClient,
    RetryPolicy,
    require_api_key,
)


class GeminiJsonClient(RetryingJsonClient):
    backend = "gemini"

    def __init__(
        self,
        model: str,
        api_key_env: str = "GOOGLE_API_KEY",
        base_url: str | None = None,
        api_version: str | None = None,
        timeout_s: float = 60.0,
        concurrency: int = 4,
        retry: RetryPolicy | Mapping[str, Any] | None = None,
        stats: CallStats | None = None,
    ):
        from google import genai
        from google.genai import errors, types

        super().__init__(model, concurrency, retry, stats)
        self.api_key_env = api_key_env
        self.base_url = base_url
        self._types = types
        self._non_json = (json.JSONDecodeError, errors.UnknownApiResponseError)
        http_options = types.HttpOptions(
            base_url=base_url or None,
            api_version=api_version or None,
            timeout=int(timeout_s * 1000),  # google-genai takes milliseconds
            retry_options=types.HttpRetryOptions(attempts=1),
        )
        self._client = genai.Client(api_key=require_api_key(api_key_env, "gemini"), http_options=http_options)

    async def _call_once(
        self, prompt: str, schema: type[BaseModel], system: str | None, temperature: float, seed: int | None
    ) -> str | None:
        types = self._types
        config = types.GenerateContentConfig(
            response_mime_type="application/json",
            response_schema=schema,
            temperature=temperature,
            seed=seed,
            system_instruction=system,
        )
        try:
            resp = await self._client.aio.models.generate_content(
                model=self.model, contents=prompt, config=config
            )
        except self._non_json as e:  # the SDK parses a 200's body as JSON and raises a bare ValueError
            raise NonJSONBodyError(f"a 200 reply whose body is not JSON ({type(e).__name__})") from e
        if not resp.candidates:
            feedback = getattr(resp, "prompt_feedback", None)
            raise InvalidResponseError(f"no candidates (prompt_feedback={feedback})")
        return resp.text

    async def aclose(self) -> None:
        await self._client.aio.aclose()
