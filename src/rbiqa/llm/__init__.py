"""JSON-output LLM clients (Gemini, OpenAI-compatible), an on-disk result cache and a bounded-concurrency
runner. Shared by the rephrase stage and the LLM judge, so retries, caching and failure recording behave
the same everywhere.
"""

from rbiqa.llm.base import (
    CallStats,
    InvalidResponseError,
    JsonLLMClient,
    LLMConfigError,
    RetryPolicy,
    is_transient,
    parse_json_response,
)
from rbiqa.llm.cache import ResultCache, cache_key
from rbiqa.llm.runner import JsonTask, TaskResult, run_json_tasks

__all__ = [
    "CallStats",
    "InvalidResponseError",
    "JsonLLMClient",
    "JsonTask",
    "LLMConfigError",
    "ResultCache",
    "RetryPolicy",
    "TaskResult",
    "cache_key",
    "is_transient",
    "make_client",
    "parse_json_response",
    "run_json_tasks",
]


def make_client(backend: str, cfg, stats: CallStats | None = None) -> JsonLLMClient:
    """Build the client named by `backend` from a config mapping (a Hydra group such as cfg.rephrase)."""
    if backend == "gemini":
        from rbiqa.llm.gemini import GeminiJsonClient

        return GeminiJsonClient.from_config(cfg, stats=stats)
    if backend == "openai_compatible":
        from rbiqa.llm.openai_compatible import OpenAICompatibleJsonClient

        return OpenAICompatibleJsonClient.from_config(cfg, stats=stats)
    raise LLMConfigError(f"unknown LLM backend {backend!r}: expected 'gemini' or 'openai_compatible'")
