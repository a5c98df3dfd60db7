"""Judge stage: score each generation against its reference (or, for unanswerable items, for
abstention) with the offline reference judge, an LLM behind an API, or a local model; failures are
missing, never 0.

- `stage`: the job (`python -m rbiqa.judge`); `inputs` reads and checks its inputs; `runner` turns items
  into judgments through the cache (rbiqa.llm.cache) and a backend.
- `protocol`: what every backend shares (tasks and outcomes, verdicts, rubric prompts in `prompts/`).
- `llm_judges`: the LLM judges, on rbiqa.llm; `reference/`: the offline reference judge and its fit.
- `agreement` (`python -m rbiqa.judge.agreement`) and `labels` (`python -m rbiqa.judge.labels`): how far
  the judges can be trusted, against each other and against human labels.
"""
