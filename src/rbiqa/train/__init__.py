"""QLoRA fine-tuning of the base model on the processed training rows (stage 5, one job per ft arm).

`python -m rbiqa.train experiment=<exp> arm=<ft arm>` writes results/<arm>/adapter/; see run.py for the
job, settings.py for the config checks that run before the model is loaded, and export.py for merging.
"""
