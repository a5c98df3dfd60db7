"""A local instruction model as judge, for people with a GPU and no API key.

Same rubric prompts as the Gemini judge, greedy batched decoding through rbiqa.models (the code that
generation uses), and the same strict verdict parser: an output that is not a valid
{"score": 0|1, "reasoning": ...} object is recorded as missing, never guessed at. Small models
follow the JSON instruction poorly, so expect many missing items below a few billion parameters.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rbiqa.judge.protocol import JudgeTask, Kind, OnResult, Outcome, VerdictError, load_rubric, parse_verdict

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HFLocalSettings:
    model_id: str
    model_path: str
    dtype: str
    load_in_4bit: bool
    max_new_len: int
    batch_size: int
    chunk_size: int
    seed: int
    rubric: str
    abstention_rubric: str

    @classmethod
    def from_cfg(cls, cfg) -> HFLocalSettings:
        return cls(
            model_id=str(cfg.model_id),
            model_path=str(cfg.model_path),
            dtype=str(cfg.dtype),
            load_in_4bit=bool(cfg.load_in_4bit),
            max_new_len=int(cfg.max_new_len),
            batch_size=int(cfg.batch_size),
            chunk_size=int(cfg.chunk_size),
            seed=int(cfg.seed),
            rubric=cfg.rubric,
            abstention_rubric=cfg.abstention_rubric,
        )


class HFLocalJudge:
    name = "hf_local"

    def __init__(self, settings: HFLocalSettings, model=None, tokenizer=None) -> None:
        self.s = settings
        self.model_id = settings.model_id
        self.rubrics = {
            "reference": load_rubric(settings.rubric),
            "abstention": load_rubric(settings.abstention_rubric),
        }
        self._model, self._tokenizer = model, tokenizer

    def prompt_hash(self, kind: Kind) -> str:
        return self.rubrics[kind].sha256

    def _load(self) -> None:
        if self._model is not None:
            return
        from rbiqa.models import load_causal_lm, load_tokenizer

        path = Path(self.s.model_path)
        quant = {"load_in_4bit": True} if self.s.load_in_4bit else None
        self._tokenizer = load_tokenizer(path, padding_side="left")
        self._model = load_causal_lm(path, dtype=self.s.dtype, quant=quant)

    def judge(self, tasks: Sequence[JudgeTask], on_result: OnResult) -> None:
        if not tasks:
            return
        self._load()
        from rbiqa.models import chat_generate

        # Chunks, not one call: each chunk's verdicts reach the cache before the next starts.
        for start in range(0, len(tasks), self.s.chunk_size):
            chunk = tasks[start : start + self.s.chunk_size]
            convs = [
                [{"role": "user", "content": self.rubrics[t.kind].render(t.question, t.answer, t.reference)}]
                for t in chunk
            ]
            outs = chat_generate(
                self._model,
                self._tokenizer,
                convs,
                max_new_tokens=self.s.max_new_len,
                batch_size=self.s.batch_size,
                do_sample=False,
                seed=self.s.seed,
            )
            for t, out in zip(chunk, outs, strict=True):
                try:
                    v = parse_verdict(out["text"])
                except VerdictError as e:
                    on_result(t, Outcome.failed(f"unparseable judge output: {e}"))
                    continue
                on_result(t, Outcome(score=v.score, reasoning=v.reasoning))
