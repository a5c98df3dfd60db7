"""Figures, booktabs tables, the paper's number macros and the lineage appendix.

Everything here reads results/metrics/*.json (never the raw judgments), so a style change reruns this
stage and the report in seconds without touching the statistics.
"""
