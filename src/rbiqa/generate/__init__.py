"""Stage 6: answer every item of the study's evaluation sets with one study arm.

`python -m rbiqa.generate experiment=<exp> arm=<arm> 'eval_sets=[a,b]'` (or `+eval_set=<set>`) writes
`results/<arm>/generations/<set>.jsonl` per set (rbiqa.schemas.Generation rows) with manifests. All arms share
the system prompt and decoding settings of `cfg.generate`; they differ only in what goes into the prompt
(few-shot turns, retrieved passages) or in the weights (a LoRA adapter), so differences in the scores
are differences between the arms, not between prompt or decoding choices.
"""
