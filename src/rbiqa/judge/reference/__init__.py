"""The offline reference judge: a logistic regression over reference-based features (no LLM, no network),
and the offline abstention detector that every judge backend's output is checked with.

- `model`: the judge itself (ReferenceJudge) and its shipped parameters (reference_params.json);
- `fit`: `python -m rbiqa.judge.reference.fit`, which fits those parameters to labelled judgments;
- `features`, `text_features`, `numbers`, `embeddings`: what the regression sees;
- `abstention`: the abstention detector (abstention_exemplars.json);
- `calibration_data`: the labelled CSV the fit (and the agreement job) reads.
"""

from pathlib import Path

# The data files shipped with the code, named here (not in the modules that read them) so that the
# workflow can list them at DAG time without importing numpy or sklearn.
DEFAULT_PARAMS = Path(__file__).with_name("reference_params.json")
EXEMPLARS_PATH = Path(__file__).with_name("abstention_exemplars.json")
