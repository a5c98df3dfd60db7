"""What a judge backend is asked (JudgeTask) and what it answers (Outcome).

Backends see only these two types, never files or configs of other stages, so each backend can be
tested alone and the runner alone decides caching, missing-handling and output order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Kind = Literal["reference", "abstention"]


@dataclass(frozen=True)
class JudgeTask:
    item_id: str
    kind: Kind  # "abstention" for unanswerable items: score 1 = abstained, did not fabricate
    question: str
    reference: str | None
    answer: str


@dataclass(frozen=True)
class Outcome:
    score: int | None
    reasoning: str | None = None
    p_correct: float | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.score in (0, 1) and self.error is None

    @classmethod
    def failed(cls, error: str) -> Outcome:
        return cls(score=None, error=error)


OnResult = Callable[[JudgeTask, Outcome], None]


class JudgeBackend(Protocol):
    name: str  # recorded as Judgment.judge_backend
    model_id: str  # recorded as Judgment.judge_model

    def prompt_hash(self, kind: Kind) -> str | None:
        """Hash of what decides the verdict besides the texts (prompt, or fitted parameters)."""

    def judge(self, tasks: Sequence[JudgeTask], on_result: OnResult) -> None:
        """Judge every task and call `on_result` once per task, as soon as its outcome is known.

        Must not raise for a per-item failure (return Outcome.failed instead); raising is reserved
        for configuration errors that would fail every item alike (bad key, unknown model).
        """


class JudgeConfigError(RuntimeError):
    """A setting makes every judgment fail (no API key, unknown model): stop and say how to fix it."""
