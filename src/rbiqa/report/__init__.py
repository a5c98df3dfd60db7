"""Report stage: builds paper/report.pdf with latexmk (and the synthetic results used to test it)."""
