"""The on-disk layout, in one place.

Snakemake (workflow/rules/common.smk) and every stage import these helpers, so a rule's declared
outputs and the files a stage writes can never drift apart. All paths are relative to the repository
root, which is the working directory of every rule.
"""

from __future__ import annotations

from pathlib import Path

DATA = Path("data")
SAMPLE = DATA / "sample"
RAW = DATA / "raw"
INTERIM = DATA / "interim"
PROCESSED = DATA / "processed"
MODELS = DATA / "models"
CACHE = DATA / "cache"
RESULTS = Path("results")
LOGS = Path("logs")
STAMPS = Path(".stamps")
PAPER = Path("paper")

# Every eval set the clean stage builds (a study evaluates the ones in `study.eval_sets`): trained facts
# asked verbatim, the same facts in a held-out wording, unseen facts, and the two side-effect probes.
EVAL_SETS = ("test_trained", "test_paraphrase", "test_unseen", "unanswerable", "general")
# Not an eval set: training rows that are no eval item, which the mine rule asks the adapter of a refine
# arm's adapter_of arm, to find the rows it gets wrong (hard negatives). Built by clean beside the eval
# sets, with the same item schema; never in a study's eval_sets, never in the stats.
TRAIN_MINING = "train_mining"
ITEM_SETS = (*EVAL_SETS, TRAIN_MINING)  # the sets an EvalItem (and a generation, a judgment) belongs to

# 1. download_data
RAW_QA = RAW / "qa.jsonl"
RAW_UNANSWERABLE = RAW / "unanswerable.jsonl"
RAW_GENERAL = RAW / "general.jsonl"
RAW_ABSTENTION_TRAIN = RAW / "abstention_train.jsonl"
RAW_GENERAL_TRAIN = RAW / "general_train.jsonl"
RAW_QUARANTINE = RAW / "quarantine.jsonl"
RAW_REPORT = RAW / "download_report.json"
RAW_MANIFEST = RAW / "manifest.json"

# 2. split (by source question, before any rephrasing)
SPLIT_DIR = INTERIM / "split"
SPLIT_TRAIN = SPLIT_DIR / "train.jsonl"  # includes the test_paraphrase sources (para_eval=true)
SPLIT_VAL = SPLIT_DIR / "val.jsonl"
SPLIT_TEST_UNSEEN = SPLIT_DIR / "test_unseen.jsonl"
SPLIT_PARA_SOURCES = SPLIT_DIR / "test_paraphrase_sources.jsonl"
SPLIT_REPORT = SPLIT_DIR / "split_report.json"
SPLIT_MANIFEST = SPLIT_DIR / "manifest.json"

# 3. rephrase
REPHRASE_DIR = INTERIM / "rephrased"
REPHRASE_TRAIN = REPHRASE_DIR / "train_aug.jsonl"
REPHRASE_TEST_PARA = REPHRASE_DIR / "test_paraphrase.jsonl"
REPHRASE_VAL_PARA = REPHRASE_DIR / "val_paraphrase.jsonl"  # held-out wordings for checkpoint selection
REPHRASE_REJECTED = REPHRASE_DIR / "rejected.jsonl"
REPHRASE_REPORT = REPHRASE_DIR / "rephrase_report.json"
REPHRASE_MANIFEST = REPHRASE_DIR / "manifest.json"
REPHRASE_CACHE = CACHE / "rephrase"

# 4. clean
CLEAN_TRAIN = PROCESSED / "train.jsonl"
CLEAN_VAL = PROCESSED / "val.jsonl"  # unseen facts (the loss curve)
CLEAN_VAL_PARA = PROCESSED / "val_paraphrase.jsonl"  # held-out wordings of trained facts (selection)
# Extra training pools an arm mixes in at a share of the rows it trains on (train.mix), audited against
# every held-out set: abstention examples (questions about rules that do not exist, "I don't know of it")
# and general-knowledge QA (against forgetting; never the `general` eval questions)
CLEAN_ABSTENTION_TRAIN = PROCESSED / "abstention_train.jsonl"
CLEAN_GENERAL_TRAIN = PROCESSED / "general_train.jsonl"
MIX_POOLS = {"abstention": CLEAN_ABSTENTION_TRAIN, "general": CLEAN_GENERAL_TRAIN}
CLEAN_REMOVED = PROCESSED / "removed.jsonl"
CLEAN_REPORT = PROCESSED / "clean_report.json"
CLEAN_MANIFEST = PROCESSED / "manifest.json"
EVAL_DIR = PROCESSED / "eval"
CONTAMINATION = RESULTS / "data" / "contamination.json"


def eval_set_path(eval_set: str) -> Path:
    return EVAL_DIR / f"{eval_set}.jsonl"


# fetch_model
def model_dir(model_name: str) -> Path:
    return MODELS / model_name


# 5. train
def arm_dir(arm: str) -> Path:
    return RESULTS / arm


def adapter_dir(arm: str) -> Path:
    return arm_dir(arm) / "adapter"


# 6. generate / 7. judge
def generations(arm: str, eval_set: str) -> Path:
    return arm_dir(arm) / "generations" / f"{eval_set}.jsonl"


def judgments(arm: str, eval_set: str) -> Path:
    return arm_dir(arm) / "judgments" / f"{eval_set}.jsonl"


JUDGE_DIR = RESULTS / "judge"
JUDGE_AGREEMENT = JUDGE_DIR / "agreement.json"
JUDGE_CONFUSION = JUDGE_DIR / "confusion.csv"

# human-label loop (rbiqa.judge.labels, not a pipeline stage): small files kept in git. judge_agreement
# reads every data/labels/*.csv; sheets/ and keys/ are what `labels export` writes and `ingest` reads.
LABELS = DATA / "labels"
LABEL_SHEETS = LABELS / "sheets"
LABEL_KEYS = LABELS / "keys"


def labels_csv(name: str) -> Path:
    return LABELS / f"{name}.csv"


def label_files() -> list[Path]:
    return sorted(LABELS.glob("*.csv"))


def label_ingest_manifest(name: str) -> Path:
    return LABELS / f"{name}.manifest.json"


def label_sheet(name: str) -> Path:
    return LABEL_SHEETS / f"{name}.csv"


def label_readme(name: str) -> Path:
    return LABEL_SHEETS / f"{name}.README.md"


def label_sheet_labelled(name: str) -> Path:
    return LABEL_SHEETS / f"{name}.labelled.csv"


def label_key(name: str) -> Path:
    return LABEL_KEYS / f"{name}.key.csv"


def label_export_manifest(name: str) -> Path:
    return LABEL_KEYS / f"{name}.export.manifest.json"


# 8. stats, 9. figures/tables, 10. report
METRICS = RESULTS / "metrics"
FIGURES = RESULTS / "figures"
TABLES = RESULTS / "tables"
NUMBERS_TEX = PAPER / "numbers.tex"
LINEAGE_TEX = PAPER / "lineage.tex"
REPORT_PDF = PAPER / "report.pdf"


def manifest_for(output: Path) -> Path:
    """Manifest of a single-file output that shares its directory with siblings."""
    return output.with_suffix(".manifest.json")


def stamp(stage: str, arm: str = "all") -> Path:
    """Resolved-config stamp of one stage (and arm): a content-based rerun trigger."""
    return STAMPS / stage / f"{arm}.yaml"
