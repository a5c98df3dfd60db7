"""The LLM layer shared by the rephrase stage and the judge: JSON-output clients for APIs (`gemini.py`,
`openai_compatible.py`), a local chat model (`hf_local.py`, on rbiqa.models and rbiqa.prefix_decoding), one
on-disk result cache (`cache.py`) and a bounded-concurrency runner (`runner.py`), so retries, caching and
failure recording behave the same everywhere.

A stage never names a backend class in code: conf/judge/*.yaml and conf/rephrase/*.yaml do, with Hydra's
`_target_`, and the stage builds them with hydra.utils.instantiate.
"""

from rbiqa.llm.base import (
    CallStats,
    InvalidResponseError,
    JsonLLMClient,
    LLMConfigError,
    MissingAPIKeyError,
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
    "MissingAPIKeyError",
    "ResultCache",
    "RetryPolicy",
    "TaskResult",
    "cache_key",
    "is_transient",
    "parse_json_response",
    "run_json_tasks",
]
