"""An LLM behind an API as judge (Gemini, or any OpenAI-compatible server), on the project's shared
JSON clients (rbiqa.llm).

The shared clients own the HTTP side: structured output against a pydantic schema, a semaphore bounding
concurrency, and tenacity backoff (honouring Retry-After) on 429/5xx/timeouts/dropped connections/
non-JSON replies/invalid or schema-invalid JSON. This module adds what is specific to judging: the
versioned rubric prompts, and the accounting rule that a call still failing after the last retry is a
missing judgment, never a 0. Errors that would fail every item alike (a rejected key, an unknown or
retired model) stop the job with a message saying how to fix it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from rbiqa.judge.protocol import APIVerdict, JudgeConfigError, JudgeTask, Kind, OnResult, Outcome, load_rubric
from rbiqa.llm import CallStats, make_client
from rbiqa.llm.base import NonRetryableHTTPError, describe_error

log = logging.getLogger(__name__)

API_BACKENDS = ("gemini", "openai_compatible")
FATAL_STATUS = {
    401: "the API key was rejected",
    403: "the API key has no access to this model",
    404: "the model was not found (retired or misspelt?)",
}
# judge.<key> passed on to the client (rbiqa.llm.make_client); the rest is the judge's own
CLIENT_KEYS = ("api_key_env", "api_key_required", "base_url", "api_version", "response_format",
               "timeout_s", "concurrency", "retry")  # fmt: skip


@dataclass(frozen=True)
class APISettings:
    backend: str
    model: str
    temperature: float
    seed: int | None
    rubric: str
    abstention_rubric: str
    client: dict[str, Any] = field(default_factory=dict)  # rbiqa.llm client settings (model_id included)

    @classmethod
    def from_cfg(cls, cfg) -> APISettings:
        plain = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
        backend = str(plain["backend"])
        if backend not in API_BACKENDS:
            raise JudgeConfigError(f"judge.backend {backend!r} is not an API backend {API_BACKENDS}")
        client = {k: plain[k] for k in CLIENT_KEYS if plain.get(k) is not None}
        return cls(
            backend=backend,
            model=str(plain["model"]),
            temperature=float(plain.get("temperature", 0.0)),
            seed=plain.get("seed"),
            rubric=str(plain["rubric"]),
            abstention_rubric=str(plain["abstention_rubric"]),
            client={**client, "model_id": str(plain["model"])},
        )

    @property
    def api_key_env(self) -> str | None:
        return self.client.get("api_key_env")

    @property
    def key_required(self) -> bool:
        """Gemini always needs a key; a local OpenAI-compatible server usually needs none."""
        return self.backend == "gemini" or bool(self.client.get("api_key_required"))


def _status(exc: BaseException) -> int | None:
    from google.genai import errors

    return exc.code if isinstance(exc, errors.APIError | NonRetryableHTTPError) else None


class APIJudge:
    def __init__(self, settings: APISettings) -> None:
        self.s = settings
        self.name = settings.backend
        self.model_id = settings.model
        self.rubrics = {
            "reference": load_rubric(settings.rubric),
            "abstention": load_rubric(settings.abstention_rubric),
        }
        self.stats = CallStats()
        # Checked here (not only by the client) so the message names the judge's offline alternative.
        env = settings.api_key_env
        if settings.key_required and not (env and os.environ.get(env, "").strip()):
            raise JudgeConfigError(
                f"the {self.name} judge needs an API key in ${env}, which is not set. "
                f"Export it (export {env}=...), or judge offline with `judge=reference`."
            )

    def prompt_hash(self, kind: Kind) -> str:
        return self.rubrics[kind].sha256

    async def _judge_one(self, client, task: JudgeTask) -> Outcome:
        prompt = self.rubrics[task.kind].render(task.question, task.answer, task.reference)
        try:
            verdict = await client.generate_json(
                prompt, APIVerdict, temperature=self.s.temperature, seed=self.s.seed
            )
        except Exception as e:
            status = _status(e)
            if status in FATAL_STATUS:
                raise JudgeConfigError(
                    f"{self.name} judge: {FATAL_STATUS[status]} ({describe_error(e)}). Check "
                    f"${self.s.api_key_env} and judge.model, or judge offline with `judge=reference`."
                ) from e
            return Outcome.failed(f"judge call failed after retries: {describe_error(e)}")
        return Outcome(score=verdict.score, reasoning=verdict.reasoning)

    async def _judge_all(self, tasks: Sequence[JudgeTask], on_result: OnResult) -> None:
        client = make_client(self.name, self.s.client, stats=self.stats)
        bar = tqdm(total=len(tasks), desc=f"{self.name} judge ({self.model_id})", unit="item")

        async def run(task: JudgeTask) -> None:
            on_result(task, await self._judge_one(client, task))
            bar.update(1)

        try:
            async with asyncio.TaskGroup() as tg:  # a fatal error cancels the rest
                for t in tasks:
                    tg.create_task(run(t))
        except* JudgeConfigError as eg:
            raise eg.exceptions[0] from None
        finally:
            bar.close()
            await client.aclose()

    def judge(self, tasks: Sequence[JudgeTask], on_result: OnResult) -> None:
        self.stats = CallStats()  # per call: the stage reports each eval set's requests apart
        if tasks:
            asyncio.run(self._judge_all(tasks, on_result))
            log.info("%s calls: %s", self.name, self.stats.as_dict())

    def call_stats(self) -> dict[str, Any]:
        """What the last `judge` call sent: requests (retries included), retries, errors by kind."""
        return self.stats.as_dict()
