"""Stage 6: answer every item of one evaluation set with one study arm.

`python -m rbiqa.generate experiment=<exp> arm=<arm> +eval_set=<set>` writes
`results/<arm>/generations/<set>.jsonl` (rbiqa.schemas.Generation rows) and its manifest. All arms share
the system prompt and decoding settings of `cfg.generate`; they differ only in what goes into the prompt
(few-shot turns, retrieved passages) or in the weights (a LoRA adapter), so differences in the scores
are differences between the arms, not between prompt or decoding choices.
"""
