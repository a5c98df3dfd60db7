"""Gemini as judge, on the project's shared Gemini JSON client (rbiqa.llm.gemini).

The shared client owns the HTTP side: google-genai's async API with the SDK's own retries off,
structured output against a pydantic schema, a semaphore bounding concurrency, and tenacity
exponential backoff on 429/5xx/timeouts/dropped connections/invalid or schema-invalid JSON. This module
adds what is specific to judging: the versioned rubric prompts, and the accounting rule that a call
still failing after the last retry is a missing judgment, never a 0. Errors that would fail every item
alike (a rejected key, an unknown or retired model) stop the job with a message saying how to fix it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, Field
from tqdm.auto import tqdm

from rbiqa.judge.prompts import load_rubric
from rbiqa.judge.tasks import JudgeConfigError, JudgeTask, Kind, OnResult, Outcome
from rbiqa.llm.base import RetryPolicy, describe_error

log = logging.getLogger(__name__)

FATAL_STATUS = {
    401: "the API key was rejected",
    403: "the API key has no access to this model",
    404: "the model was not found (retired or misspelt?)",
}


class GeminiVerdict(BaseModel):
    """Sent as response_schema and validated on return (a score of 7 is schema-invalid: retried).

    Gemini schemas have no integer enums, so 0|1 is expressed as a bounded integer.
    """

    score: int = Field(
        ge=0, le=1, description="1 if the answer meets every requirement of the rubric, else 0"
    )
    reasoning: str = Field(min_length=1, description="one or two sentences justifying the score")


@dataclass(frozen=True)
class GeminiSettings:
    model: str
    api_key_env: str
    base_url: str | None
    concurrency: int
    timeout_s: float
    temperature: float
    seed: int | None
    retry: RetryPolicy
    rubric: str
    abstention_rubric: str

    @classmethod
    def from_cfg(cls, cfg) -> GeminiSettings:
        return cls(
            model=str(cfg.model),
            api_key_env=str(cfg.api_key_env),
            base_url=cfg.get("base_url") or None,
            concurrency=int(cfg.concurrency),
            timeout_s=float(cfg.timeout_s),
            temperature=float(cfg.temperature),
            seed=cfg.get("seed"),
            retry=RetryPolicy.from_config(cfg.get("retry")),
            rubric=str(cfg.rubric),
            abstention_rubric=str(cfg.abstention_rubric),
        )


def _status(exc: BaseException) -> int | None:
    from google.genai import errors

    return exc.code if isinstance(exc, errors.APIError) else None


class GeminiJudge:
    name = "gemini"

    def __init__(self, settings: GeminiSettings) -> None:
        self.s = settings
        self.model_id = settings.model
        self.rubrics = {
            "reference": load_rubric(settings.rubric),
            "abstention": load_rubric(settings.abstention_rubric),
        }
        # Checked here (not only by the client) so the message names the judge's offline alternative.
        if not os.environ.get(settings.api_key_env, "").strip():
            raise JudgeConfigError(
                f"the gemini judge needs an API key in ${settings.api_key_env}, which is not set. "
                f"Export it (export {settings.api_key_env}=...), or judge offline with `judge=reference`."
            )

    def prompt_hash(self, kind: Kind) -> str:
        return self.rubrics[kind].sha256

    def _client(self):
        from rbiqa.llm.gemini import GeminiJsonClient

        return GeminiJsonClient(
            model=self.s.model,
            api_key_env=self.s.api_key_env,
            base_url=self.s.base_url,
            timeout_s=self.s.timeout_s,
            concurrency=self.s.concurrency,
            retry=self.s.retry,
        )

    async def _judge_one(self, client, task: JudgeTask) -> Outcome:
        prompt = self.rubrics[task.kind].render(task.question, task.answer, task.reference)
        try:
            verdict = await client.generate_json(
                prompt, GeminiVerdict, temperature=self.s.temperature, seed=self.s.seed
            )
        except Exception as e:
            status = _status(e)
            if status in FATAL_STATUS:
                raise JudgeConfigError(
                    f"gemini judge: {FATAL_STATUS[status]} ({describe_error(e)}). Check "
                    f"${self.s.api_key_env} and judge.model, or judge offline with `judge=reference`."
                ) from e
            return Outcome.failed(f"judge call failed after retries: {describe_error(e)}")
        return Outcome(score=verdict.score, reasoning=verdict.reasoning)

    async def _judge_all(self, tasks: Sequence[JudgeTask], on_result: OnResult) -> dict:
        client = self._client()
        bar = tqdm(total=len(tasks), desc=f"gemini judge ({self.s.model})", unit="item")

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
        return client.stats.as_dict()

    def judge(self, tasks: Sequence[JudgeTask], on_result: OnResult) -> None:
        if tasks:
            stats = asyncio.run(self._judge_all(tasks, on_result))
            log.info("gemini calls: %s", stats)
