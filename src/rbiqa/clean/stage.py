"""Stage 4: clean the training data and build the evaluation sets.

Order: validate -> PII (redact | drop | flag) -> exact + near dedup within each split -> contamination
audit of training texts against every held-out question -> test_trained from what is left -> bounds
check -> write. Every removed row goes to removed.jsonl with its reason (PII-dropped rows with their PII
masked: the originals stay in the upstream files), and every count is in clean_report.json.

The audit covers the questions that must not be in training: test_unseen, and the held-out wordings
(test_paraphrase, val_paraphrase). test_trained is exempt by design: it is the trained original wording,
asked verbatim as the manipulation check. It is built after cleaning, from the originals that survived,
so every test_trained item really was trained on.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from typing import Any

from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from rbiqa import paths as P
from rbiqa import stages
from rbiqa.clean import pii as PII
from rbiqa.clean.contamination import ContaminationConfig, EvalText, TrainText, audit, is_contamination
from rbiqa.clean.dedup import DedupConfig, dedup
from rbiqa.clean.inputs import (
    ParaRow,
    SplitRow,
    TrainRow,
    load_rows,
    para_row_to_train,
    pool_row_to_train,
    split_row_to_train,
    to_eval_item,
)
from rbiqa.config import to_container
from rbiqa.io import InputError, write_json, write_jsonl
from rbiqa.manifest import write_manifest
from rbiqa.schemas import AbstentionTrainRecord, GeneralRecord, UnanswerableRecord
from rbiqa.split import source_hash
from rbiqa.stages import flat
from rbiqa.study import load_study

log = logging.getLogger(__name__)

MIX_SPLITS = tuple(f"{pool}_train" for pool in P.MIX_POOLS)  # the training pools of train.mix
TRAIN_SPLITS = ("train", "val", "val_paraphrase", *MIX_SPLITS)
# held-out questions audited against every training text, QA rows and abstention examples alike
# (test_trained is the trained wording itself)
AUDITED = ("test_unseen", "test_paraphrase", "val_paraphrase", "val", "unanswerable", "general")
TRAINED = ("train", *MIX_SPLITS)  # the splits a train job reads


def _id_key(split: str) -> str:
    return "row_id" if split in TRAIN_SPLITS else "item_id"


def load_all() -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]]]:
    removed: list[dict[str, Any]] = []

    def load(path, model, what):
        rows, bad = load_rows(path, model, what)
        removed.extend(bad)
        return rows

    splits = {
        "train": load(P.REPHRASE_TRAIN, TrainRow, "train"),
        "val": [split_row_to_train(r) for r in load(P.SPLIT_VAL, SplitRow, "val")],
        "val_paraphrase": [para_row_to_train(r) for r in load(P.REPHRASE_VAL_PARA, ParaRow, "val_paraphrase")],
        "test_paraphrase": [to_eval_item("test_paraphrase")(r) for r in load(P.REPHRASE_TEST_PARA, ParaRow, "test_paraphrase")],
        "test_unseen": [
            to_eval_item("test_unseen")(split_row_to_train(r))
            for r in load(P.SPLIT_TEST_UNSEEN, SplitRow, "test_unseen")
        ],
        "unanswerable": [to_eval_item("unanswerable")(r) for r in load(P.RAW_UNANSWERABLE, UnanswerableRecord, "unanswerable")],
        "general": [to_eval_item("general")(r) for r in load(P.RAW_GENERAL, GeneralRecord, "general")],
        "abstention_train": [pool_row_to_train(r, r["regulation_area"], "abstention") for r in load(P.RAW_ABSTENTION_TRAIN, AbstentionTrainRecord, "abstention_train")],
        "general_train": [pool_row_to_train(r, "general", r["topic"]) for r in load(P.RAW_GENERAL_TRAIN, GeneralRecord, "general_train")],
    }  # fmt: skip
    return splits, removed


def _removal(split: str, row: dict[str, Any], reason: str, **detail: Any) -> dict[str, Any]:
    return {
        "split": split,
        "id": row.get(_id_key(split)),
        "source_id": row.get("source_id"),
        "reason": reason,
        "detail": detail,
        "row": row,
    }


def apply_pii(splits, cfg: PII.PiiConfig, removed, report) -> None:
    for split, rows in splits.items():
        kept, findings_all, flagged, redacted = [], [], [], 0
        for row in tqdm(rows, desc=f"pii[{split}]", unit="row", mininterval=2):
            out = PII.scan_row(row, cfg)
            # findings hold offsets and entity types, never the PII text itself
            entities = sorted({f["entity"] for f in out.findings})
            if out.action == "drop":
                removed.append(_removal(split, out.row, "pii", entities=entities, findings=out.findings))
                findings_all += out.findings
                continue
            if out.action == "redact":
                redacted += 1
            if any(f["action"] == "flag" for f in out.findings):
                flagged.append({"id": row[_id_key(split)], "entities": entities})
            findings_all += out.findings
            kept.append(out.row)
        splits[split] = kept
        report[split]["pii"] = {
            "findings": PII.summarize(findings_all),
            "rows_redacted": redacted,
            "rows_flagged": len(flagged),
            "flagged": flagged,
        }


def apply_dedup(splits, cfg: DedupConfig, removed, report) -> None:
    for split, rows in splits.items():
        keep, rem = dedup(rows, cfg, id_key=_id_key(split), progress=False)
        for r in rem:
            row = rows[r["index"]]
            removed.append(_removal(split, row, r["reason"], dup_of=r["dup_of"], similarity=r["similarity"]))
        splits[split] = [rows[i] for i in keep]
        report[split]["dedup"] = dict(Counter(r["reason"] for r in rem))


def apply_contamination(splits, cfg: ContaminationConfig, removed, split: str = "train") -> dict[str, Any]:
    """Remove the rows of the training split `split` whose question or answer copies an AUDITED question."""
    train = splits[split]
    texts = [TrainText(r["row_id"], r["source_id"], f, r[f]) for r in train for f in ("question", "answer")]
    tests = [
        EvalText(it.get("item_id") or it["row_id"], it["source_id"], s, it["question"])
        for s in AUDITED
        for it in splits[s]
    ]
    hits = audit(texts, tests, cfg)
    by_id = {r["row_id"]: r for r in train}
    q_of = {t.item_id: t.question for t in tests}
    bad: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for h in hits:
        h["contamination"] = is_contamination(h, cfg)
        h["train_text"] = by_id[h["train_row_id"]][h["train_field"]][:300]
        h["test_question"] = q_of[h["test_item_id"]]
        if h["contamination"]:
            bad[h["train_row_id"]].append(h)
    # an original question (variant 0) that copies a test question makes its whole source a duplicate
    # of that test item: its paraphrases go too, even where they are too reworded to hit on their own
    whole = (
        {by_id[rid]["source_id"] for rid in bad if by_id[rid]["variant_idx"] == 0}
        if cfg.whole_source
        else set()
    )
    via_source = {r["row_id"] for r in train if r["source_id"] in whole and r["row_id"] not in bad}
    for rid, hs in bad.items():
        removed.append(
            _removal(split, by_id[rid], "contamination",
                     hits=[{k: h[k] for k in ("test_item_id", "eval_set", "detector", "ngram_containment", "jaccard")} for h in hs])
        )  # fmt: skip
    for rid in sorted(via_source):
        removed.append(_removal(split, by_id[rid], "contamination", via=f"{by_id[rid]['source_id']}:v0"))
    bad.update({rid: [] for rid in via_source})
    splits[split] = [r for r in train if r["row_id"] not in bad]
    same = [h for h in hits if h["same_source"]]
    return {
        "thresholds": {k: v for k, v in vars(cfg).items() if k != "seed"},
        "train_texts_audited": len(texts),
        "train_rows_audited": len(train),
        "test_questions": {s: len(splits[s]) for s in AUDITED},
        "hits_total": len(hits),
        "cross_source_hits": sum(1 for h in hits if not h["same_source"]),
        "cross_source_numeric_variants_kept": sum(1 for h in hits if not h["same_source"] and not h["contamination"]),
        "same_source_hits": len(same),
        "same_source_hits_by_eval_set": dict(Counter(h["eval_set"] for h in same)),
        "contaminated_train_rows_removed": len(bad),
        "removed_with_their_source": len(via_source),
        "hits_by_eval_set": dict(Counter(h["eval_set"] for h in hits)),
        "hits": sorted(hits, key=lambda h: (not h["contamination"], h["train_row_id"], h["test_item_id"])),
    }  # fmt: skip


def _without_hits(report: dict[str, Any]) -> dict[str, Any]:
    return {k: _without_hits(v) if k in TRAINED else v for k, v in report.items() if k != "hits"}


def build_test_trained(
    train: list[dict[str, Any]], flagged: set[str]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """test_trained: the surviving original (variant 0) of every trained_eval source (`flagged`, as they
    were before cleaning), asked verbatim."""
    make = to_eval_item("test_trained")
    items = [make(r) for r in train if r.get("trained_eval") and r["variant_idx"] == 0]
    kept = {it["source_id"] for it in items}
    return items, {
        "in": len(flagged),
        # a flagged source whose original did not survive cleaning was not trained verbatim: not an item
        "sources_without_original": sorted(flagged - kept),
    }


def build_train_mining(
    train: list[dict[str, Any]], test_trained: list[dict[str, Any]], max_items: int | None, seed: int
) -> list[dict[str, Any]]:
    """train_mining: the training rows that are no eval item (all but the originals asked verbatim as
    test_trained; held-out wordings are not training rows at all), at most `max_items` of them, those
    with the smallest hash of (seed, row_id), in file order."""
    asked = {it["item_id"] for it in test_trained}
    rows = [r for r in train if r["row_id"] not in asked]
    if max_items is not None and len(rows) > max_items:
        keep = {r["row_id"] for r in sorted(rows, key=lambda r: source_hash(seed, r["row_id"]))[:max_items]}
        rows = [r for r in rows if r["row_id"] in keep]
    return [to_eval_item(P.TRAIN_MINING)(r) for r in rows]


def run(cfg: DictConfig) -> dict[str, Any]:
    t0 = time.perf_counter()
    ccfg = OmegaConf.to_container(cfg.clean, resolve=True)
    seed = int(cfg.seed)
    pii_cfg = PII.PiiConfig.from_config(ccfg["pii"])
    dedup_cfg = DedupConfig.from_config(ccfg["dedup"], seed)
    cont_cfg = ContaminationConfig.from_config(ccfg["contamination"], seed)

    splits, removed = load_all()
    flagged = {r["source_id"] for r in splits["train"] if r.get("trained_eval")}
    report: dict[str, dict[str, Any]] = {s: {"in": len(rows)} for s, rows in splits.items()}
    for r in removed:  # invalid rows counted as input too
        report[r["split"]]["in"] += 1

    apply_pii(splits, pii_cfg, removed, report)
    apply_dedup(splits, dedup_cfg, removed, report)
    contamination = apply_contamination(splits, cont_cfg, removed)
    for pool in TRAINED[1:]:
        contamination[pool] = apply_contamination(splits, cont_cfg, removed, pool)
    splits["test_trained"], trained_report = build_test_trained(splits["train"], flagged)
    mining = build_train_mining(splits["train"], splits["test_trained"], ccfg["train_mining_max_items"], seed)

    by_split_reason: dict[str, Counter] = defaultdict(Counter)
    for r in removed:
        by_split_reason[r["split"]][r["reason"]] += 1
    report["test_trained"] = trained_report
    for s in report:
        report[s]["out"] = len(splits[s])
        report[s]["removed"] = dict(sorted(by_split_reason[s].items()))
        lost = len(report[s].get("sources_without_original", []))
        if report[s]["in"] != report[s]["out"] + sum(by_split_reason[s].values()) + lost:
            raise RuntimeError(f"clean: row accounting broken in {s}: {report[s]}")  # a bug, not bad input

    n_in, n_out = report["train"]["in"], report["train"]["out"]
    frac = 1 - n_out / n_in if n_in else 1.0
    problems = []
    if n_out == 0:
        problems.append("no training rows survived cleaning")
    if frac > float(ccfg["max_train_removed_frac"]):
        problems.append(
            f"cleaning removed {frac:.1%} of the training rows, above clean.max_train_removed_frac="
            f"{ccfg['max_train_removed_frac']} (reasons: {dict(by_split_reason['train'])}); inspect "
            f"{P.CLEAN_REMOVED} and the thresholds"
        )
    empty_eval = [s for s in load_study(cfg).eval_sets if not splits[s]]
    if empty_eval:
        problems.append(f"evaluation sets of the study with no items after cleaning: {empty_eval}")
    if not splits["val_paraphrase"]:
        problems.append(
            "no val_paraphrase rows: checkpoint selection needs held-out wordings of trained facts"
        )
    summary = {
        "seed": seed,
        "splits": report,
        "train_removed_frac": round(frac, 4),
        "max_train_removed_frac": float(ccfg["max_train_removed_frac"]),
        "train_sources": len({r["source_id"] for r in splits["train"]}),
        "train_rows_by_variant": dict(
            sorted(Counter(str(r["variant_idx"]) for r in splits["train"]).items())
        ),
        "train_mining": {"items": len(mining), "max_items": ccfg["train_mining_max_items"]},
        "contamination": _without_hits(contamination),
        "config": {"pii": ccfg["pii"], "dedup": ccfg["dedup"], "contamination": ccfg["contamination"]},
        "wall_seconds": round(time.perf_counter() - t0, 2),
        "ok": not problems,
        "problems": problems,
    }
    # reports first, so a failed run still leaves the evidence behind
    write_json(P.CLEAN_REPORT, summary)
    write_jsonl(P.CLEAN_REMOVED, removed)
    write_json(P.CONTAMINATION, contamination)
    if problems:
        raise InputError("clean: " + "; ".join(problems))

    write_jsonl(P.CLEAN_TRAIN, splits["train"])
    write_jsonl(P.CLEAN_VAL, splits["val"])
    write_jsonl(P.CLEAN_VAL_PARA, splits["val_paraphrase"])
    for pool, path in P.MIX_POOLS.items():
        write_jsonl(path, splits[f"{pool}_train"])
    for s in P.EVAL_SETS:
        write_jsonl(P.eval_set_path(s), splits[s])
    write_jsonl(P.eval_set_path(P.TRAIN_MINING), mining)
    outputs, inputs = flat(stages.clean_outputs()), flat(stages.clean_inputs())
    write_manifest(
        P.CLEAN_MANIFEST, "clean", to_container(cfg), inputs, outputs,
        {"counts": {s: {"in": report[s]["in"], "out": report[s]["out"]} for s in report},
         "contaminated_train_rows_removed": contamination["contaminated_train_rows_removed"]},
    )  # fmt: skip
    log.info("clean: %s", {s: f"{report[s]['in']}->{report[s]['out']}" for s in report})
    return summary
