"""Gemini client over google-genai's async API with JSON-schema output.

The SDK's own retries are switched off (`HttpRetryOptions(attempts=1)`, which also disables its implicit
aiohttp reconnect loop) so that rbiqa.llm.base.RetryPolicy is the only retry layer and every attempt is
counted. `base_url` lets tests (and proxies) point the real SDK at another server.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from rbiqa.llm.base import (
    CallStats,
    InvalidResponseError,
    LLMConfigError,
    NonJSONBodyError,
    RetryingJsonClient,
    RetryPolicy,
)
from rbiqa.manifest import register_secret_env


def require_api_key(env_var: str, backend: str) -> str:
    register_secret_env(env_var)  # a custom `api_key_env` is redacted like the fixed names
    key = os.environ.get(env_var, "").strip()
    if not key:
        raise LLMConfigError(
            f"the {backend} backend needs an API key in the environment variable {env_var}, which is not "
            f"set. Export it (`export {env_var}=...`), point `api_key_env` at the variable you use, or "
            "choose the offline backend (e.g. `rephrase=hf_local`)."
        )
    return key


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
        retry: RetryPolicy | None = None,
        stats: CallStats | None = None,
    ):
        from google import genai
        from google.genai import errors, types

        super().__init__(model, concurrency, retry or RetryPolicy(), stats)
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

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], stats: CallStats | None = None) -> GeminiJsonClient:
        return cls(
            model=str(cfg["model_id"]),
            api_key_env=str(cfg.get("api_key_env", "GOOGLE_API_KEY")),
            base_url=cfg.get("base_url") or None,
            api_version=cfg.get("api_version") or None,
            timeout_s=float(cfg.get("timeout_s", 60)),
            concurrency=int(cfg.get("concurrency", 4)),
            retry=RetryPolicy.from_config(cfg.get("retry")),
            stats=stats,
        )

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
