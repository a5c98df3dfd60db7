"""Statistics of the study: intervals, paired tests, per-category breakdowns, power, seed variance.

The pure functions live in small modules (`intervals`, `paired`, `power`, `categories`, `seeds`, and
`kappa` for judge agreement) so they can be tested against independent computations; `metrics`
assembles them and `stage` is the `python -m rbiqa.stats` job that writes `results/metrics/*.json`.
"""
