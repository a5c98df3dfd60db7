"""The offline reference judge: a logistic regression over reference-based features (no LLM, no network),
and the offline abstention detector that every judge backend's output is checked with.

- `model`: the judge itself (ReferenceJudge) and its shipped parameters (reference_params.json);
- `fit`: `python -m rbiqa.judge.reference.fit`, which fits those parameters to labelled judgments;
- `features`, `text_features`, `numbers`, `embeddings`: what the regression sees;
- `abstention`: the abstention detector (abstention_exemplars.json);
- `calibration_data`: the labelled CSV the fit (and the agreement job) reads.
"""
