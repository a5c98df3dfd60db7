"""Judge stage: score each generation against its reference (or, for unanswerable items, for
abstention) with the offline reference judge, Gemini, or a local model; failures are missing, never 0.
"""
