"""Stage 4: dedup, PII, contamination audit, and the evaluation sets."""
