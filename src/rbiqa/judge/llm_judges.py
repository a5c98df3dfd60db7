"""An LLM as judge: behind an API (Gemini, any OpenAI-compatible server) or on this machine (a local
instruction model, for people with a GPU and no API key), on the shared LLM layer (rbiqa.llm).

conf/judge/<backend>.yaml names the class here and its LLM with Hydra `_target_`s; the stage builds them
with hydra.utils.instantiate. Both judges ask the versioned rubric prompts (rbiqa.judge.protocol); what
differs is how an answer comes back:

- APIJudge: the API client owns the HTTP side: structured output against the APIVerdict schema, a
  semaphore bounding concurrency, and tenacity backoff (honouring Retry-After) on 429/5xx/timeouts/dropped
  connections/non-JSON replies/invalid or schema-invalid JSON. A call still failing after the last retry
  is a missing judgment, never a 0. Errors that would fail every item alike (a rejected key, an unknown or
  retired model) stop the job with a message saying how to fix it.
- LocalJudge: greedy batched decoding (rbiqa.models, the code that generation uses) and the strict verdict
  parser: an output that is not a valid {"score": 0|1, "reasoning": ...} object is recorded as missing,
  never guessed at. Small models follow the JSON instruction poorly, so expect many missing items below a
  few billion parameters.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from tqdm.auto import tqdm

from rbiqa.judge.protocol import (
    APIVerdict,
    JudgeConfigError,
    JudgeTask,
    Kind,
    OnResult,
    Outcome,
    VerdictError,
    load_rubric,
    parse_verdict,
)
from rbiqa.llm.base import CallStats, JsonLLMClient, MissingAPIKeyError, NonRetryableHTTPError, describe_error
from rbiqa.llm.hf_local import HFLocalChatModel

log = logging.getLogger(__name__)

FATAL_STATUS = {
    401: "the API key was rejected",
    403: "the API key has no access to this model",
    404: "the model was not found (retired or misspelt?)",
}


class _RubricJudge:
    """The rubric prompts of both kinds of item; their hashes identify the judge's verdicts."""

    def __init__(self, rubric: str, abstention_rubric: str) -> None:
        self.rubrics = {"reference": load_rubric(rubric), "abstention": load_rubric(abstention_rubric)}

    def prompt_hash(self, kind: Kind) -> str:
        return self.rubrics[kind].sha256

    def prompt(self, task: JudgeTask) -> str:
        return self.rubrics[task.kind].render(task.question, task.answer, task.reference)


def _status(exc: BaseException) -> int | None:
    from google.genai import errors

    return exc.code if isinstance(exc, errors.APIError | NonRetryableHTTPError) else None


class APIJudge(_RubricJudge):
    """`client` makes a fresh API client (a Hydra `_partial_`), given `stats=`: one per `judge` call, as
    each call runs its own event loop. One is made, and closed, when the judge is built, so a missing API
    key stops the job before anything is read."""

    def __init__(
        self,
        client: Callable[..., JsonLLMClient],
        rubric: str,
        abstention_rubric: str,
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> None:
        super().__init__(rubric, abstention_rubric)
        self.new_client = client
        self.temperature = float(temperature)
        self.seed = seed
        self.stats = CallStats()
        try:
            probe = client(stats=self.stats)
        except MissingAPIKeyError as e:  # the message names the judge's offline alternative
            raise JudgeConfigError(
                f"the {e.backend} judge needs an API key in ${e.env_var}, which is not set. "
                f"Export it (export {e.env_var}=...), or judge offline with `judge=reference`."
            ) from None
        self.name, self.model_id = probe.backend, probe.model
        self.api_key_env = getattr(probe, "api_key_env", None)
        asyncio.run(probe.aclose())

    async def _judge_one(self, client: JsonLLMClient, task: JudgeTask) -> Outcome:
        try:
            verdict = await client.generate_json(
                self.prompt(task), APIVerdict, temperature=self.temperature, seed=self.seed
            )
        except Exception as e:
            status = _status(e)
            if status in FATAL_STATUS:
                raise JudgeConfigError(
                    f"{self.name} judge: {FATAL_STATUS[status]} ({describe_error(e)}). Check "
                    f"${self.api_key_env} and judge.model, or judge offline with `judge=reference`."
                ) from e
            return Outcome.failed(f"judge call failed after retries: {describe_error(e)}")
        return Outcome(score=verdict.score, reasoning=verdict.reasoning)

    async def _judge_all(self, tasks: Sequence[JudgeTask], on_result: OnResult) -> None:
        client = self.new_client(stats=self.stats)
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


class LocalJudge(_RubricJudge):
    """`llm`: the local model; `max_new_len` new tokens at most per verdict, `batch_size` sequences per
    generate() call, `chunk_size` items between cache writes (what a kill can lose)."""

    def __init__(
        self,
        llm: HFLocalChatModel,
        rubric: str,
        abstention_rubric: str,
        max_new_len: int,
        batch_size: int,
        chunk_size: int,
        seed: int,
    ) -> None:
        super().__init__(rubric, abstention_rubric)
        self.llm = llm
        self.name, self.model_id = llm.backend, llm.model_id
        self.max_new_len, self.batch_size = int(max_new_len), int(batch_size)
        self.chunk_size, self.seed = int(chunk_size), int(seed)

    def judge(self, tasks: Sequence[JudgeTask], on_result: OnResult) -> None:
        # Chunks, not one call: each chunk's verdicts reach the cache before the next starts.
        for start in range(0, len(tasks), self.chunk_size):
            chunk = tasks[start : start + self.chunk_size]
            outs = self.llm.chat(
                [[{"role": "user", "content": self.prompt(t)}] for t in chunk],
                max_new_tokens=self.max_new_len,
                batch_size=self.batch_size,
                do_sample=False,
                seed=self.seed,
            )
            for t, out in zip(chunk, outs, strict=True):
                try:
                    v = parse_verdict(out["text"])
                except VerdictError as e:
                    on_result(t, Outcome.failed(f"unparseable judge output: {e}"))
                    continue
                on_result(t, Outcome(score=v.score, reasoning=v.reasoning))
