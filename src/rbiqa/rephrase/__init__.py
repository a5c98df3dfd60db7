"""Stage 3: LLM rephrasings of the training questions (the study's augmentation lever)."""
