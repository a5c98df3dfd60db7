"""judge_agreement job: how far the judges can be trusted, as Cohen's kappa with CIs.

`python -m rbiqa.judge.agreement experiment=<exp>` writes results/judge/agreement.json and
results/judge/confusion.csv:
  (a) the reference judge against the Gemini labels of the dev file, from the grouped, nested
      cross-validation stored in reference_params.json (or recomputed when
      judge.agreement.calibration_csv is set and present);
  (b) every pair of judges (backend + model) that scored the same items in the configured judgment
      files;
  (c) every judge against human labels: the ingested sheets in data/labels/*.csv (python -m
      rbiqa.judge.labels) and judge.agreement.human_labels_csv if set. `human` pools every eval set;
      `human_labels` has kappa per eval set, pooled over the answerable sets, and on `unanswerable` (the
      judge's abstention verdict), each flagged small_n below judge.agreement.human_min_n items.
      A label is of one answer text: one whose answer has changed since (a rerun generation) is stale
      and left out, and counted.
The reference rater of each comparison is the first one named (labels, human, or first judge).
"""

from __future__ import annotations

import csv
import glob
import itertools
import logging
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from rbiqa import paths as P
from rbiqa.config import stage_main, to_container
from rbiqa.io import InputError, atomic_write, iter_jsonl, read_json, write_json
from rbiqa.judge.reference.calibration_data import decode_models
from rbiqa.judge.reference.model import DEFAULT_PARAMS
from rbiqa.manifest import write_manifest
from rbiqa.schemas import Judgment
from rbiqa.stages import repo_relative
from rbiqa.stats.kappa import agreement_by_group, kappa_summary

log = logging.getLogger(__name__)

JUDGE_CONFUSION = P.JUDGE_CONFUSION
HUMAN_COLUMNS = ("arm", "eval_set", "item_id", "score")
HOLDOUT_KEYS = ("n", "n_clusters", "kappa", "kappa_ci", "accuracy", "per_model", "rule", "threshold")


def reference_vs_labels(acfg: DictConfig, params_path: Path = DEFAULT_PARAMS) -> dict:
    params = read_json(params_path)
    csv_path = acfg.get("calibration_csv")
    if csv_path and Path(csv_path).is_file():
        from rbiqa.judge.reference.calibration_data import load_calibration_csv
        from rbiqa.judge.reference.fit import compute_features, nested_cv

        df = load_calibration_csv(csv_path)
        y, groups = df["judge_score"].to_numpy(), df["item_id"].to_numpy()
        model = df["model"].astype(str).to_numpy() if "model" in df else np.full(len(df), "all")
        x, _ = compute_features(df, progress=True)
        _, pred, _ = nested_cv(x, y, groups, params["C"], params["seed"], params["cv"]["n_splits"])
        source = f"recomputed: nested grouped {params['cv']['n_splits']}-fold CV on {csv_path}"
    else:
        if csv_path:
            log.warning(
                "judge.agreement.calibration_csv=%s not found; using the CV stored in %s",
                csv_path,
                params_path,
            )
        oof = params["cv_oof"]
        y = np.array([int(c) for c in oof["y_true"]])
        pred = np.array([int(c) for c in oof["y_pred"]])
        groups = np.array(oof["cluster"])
        model = np.array(decode_models(oof.get("model", ""), f"{params_path}: cv_oof.model"))
        if len(model) != len(y):
            model = np.full(len(y), "all")
        source = f"stored out-of-fold predictions of {params_path.name} (nested grouped {params['cv']['n_splits']}-fold CV)"
    summary = kappa_summary(y, pred, clusters=groups, n_boot=int(acfg.n_boot), seed=int(acfg.seed))
    summary.update(
        source=source,
        raters=["gemini-2.0-flash labels (reference study)", "reference judge"],
        training_data=params["training_data"],
        threshold=params["threshold"],
        # per answer model: pooled kappa can hide a judge that is lenient on one arm and strict on another
        per_model=agreement_by_group(
            y, pred, model, clusters=groups, n_boot=int(acfg.n_boot), seed=int(acfg.seed)
        ),
    )
    if "holdout" in params:  # one estimate on questions no modelling choice looked at (reference.fit)
        summary["holdout"] = {k: params["holdout"][k] for k in HOLDOUT_KEYS if k in params["holdout"]}
    return summary


def load_judgments(globs: list[str]) -> tuple[pd.DataFrame, list[Path]]:
    """Every judgment file of an eval set the globs match; the mine rule's judgments of training rows
    (train_mining) are no eval set, and are written while this rule may run."""
    files = sorted({Path(f) for g in globs for f in glob.glob(g) if Path(f).stem in P.EVAL_SETS})
    rows = []
    for f in files:
        for lineno, raw in enumerate(iter_jsonl(f), 1):
            try:
                j = Judgment.model_validate(raw)
            except ValueError as e:
                raise InputError(f"{f}:{lineno}: not a Judgment row ({e})") from e
            rows.append(
                {**j.model_dump(), "rater": f"{j.judge_backend}:{j.judge_model}", "file": f.as_posix()}
            )
    cols = ["arm", "eval_set", "item_id", "source_id", "score", "rater", "file"]
    return (pd.DataFrame(rows) if rows else pd.DataFrame(columns=cols)), files


def _pair(a: pd.DataFrame, b: pd.DataFrame, acfg) -> dict | None:
    keys = ["arm", "eval_set", "item_id"]
    m = a.merge(b, on=keys, suffixes=("_a", "_b"))
    if m.empty:
        return None
    clusters = m["source_id_a"] if "source_id_a" in m else m["item_id"]
    return kappa_summary(
        m["score_a"].astype(int),
        m["score_b"].astype(int),
        clusters=clusters.to_numpy(),
        n_boot=int(acfg.n_boot),
        seed=int(acfg.seed),
    )


def judge_pairs(df: pd.DataFrame, acfg) -> list[dict]:
    scored = df[df["score"].notna()]
    dup = scored.duplicated(["rater", "arm", "eval_set", "item_id"], keep=False)
    if dup.any():
        ex = scored[dup].iloc[0]
        raise InputError(
            f"rater {ex['rater']} judged item {ex['item_id']} ({ex['arm']}/{ex['eval_set']}) more than once; check judgment_globs"
        )
    out = []
    raters = sorted(scored["rater"].unique())
    for ra, rb in itertools.combinations(raters, 2):
        s = _pair(scored[scored.rater == ra], scored[scored.rater == rb], acfg)
        if s is not None:
            out.append({"raters": [ra, rb], **s})
    return out


def load_human_labels(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"judge.agreement.human_labels_csv not found: {path}")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in HUMAN_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing columns {missing}; expected {list(HUMAN_COLUMNS)}")
    bad = df[~df["score"].str.strip().isin(["0", "1"])]
    if len(bad):
        raise InputError(
            f"{path}: {len(bad)} rows have a score other than 0/1 (first at CSV line {bad.index[0] + 2})"
        )
    if df.duplicated(["arm", "eval_set", "item_id"]).any():
        raise InputError(f"{path}: duplicated (arm, eval_set, item_id) rows")
    df["score"] = df["score"].astype(int)
    return df


def human_agreement(df: pd.DataFrame, human: pd.DataFrame, acfg) -> list[dict]:
    scored = df[df["score"].notna()]
    out = []
    for rater in sorted(scored["rater"].unique()):
        s = _pair(human.assign(source_id=human["item_id"]), scored[scored.rater == rater], acfg)
        if s is not None:
            out.append({"raters": ["human", rater], **s})
    return out


ABSTAIN_SET = "unanswerable"  # judged by the abstention verdict (rbiqa.judge.runner), not correctness
POOLED_ANSWERABLE = "answerable (pooled)"


def _finite(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x


def current_answer_hashes(labels: pd.DataFrame) -> tuple[dict, list[Path]]:
    """{(arm, eval_set): {item_id: hash of its answer now}} from the run's generations, or None per
    (arm, eval_set) whose generations file is absent."""
    from rbiqa.judge.labels import norm_hash

    out, files = {}, []
    for arm, e in sorted(set(zip(labels["arm"], labels["eval_set"], strict=True))):
        path = P.generations(arm, e)
        if e not in P.EVAL_SETS or not path.is_file():
            out[(arm, e)] = None
            continue
        files.append(path)
        out[(arm, e)] = {
            r["item_id"]: norm_hash(r.get("answer")) for r in iter_jsonl(path) if r.get("answer") is not None
        }
    return out, files


def mark_stale(labels: pd.DataFrame) -> tuple[pd.DataFrame, list[Path]]:
    """Add `answer_check`: ok (the labelled answer is the current one), stale (it changed, or it has no
    answer now) or unverified (no answer hash in the label file, or no generations file)."""
    hashes, files = current_answer_hashes(labels)
    status = []
    for r in labels.itertuples():
        now = hashes.get((r.arm, r.eval_set))
        if not r.answer_sha256 or now is None:
            status.append("unverified")
        else:
            status.append("ok" if now.get(r.item_id) == r.answer_sha256 else "stale")
    return labels.assign(answer_check=status), files


def _human_block(m: pd.DataFrame, acfg, scope: str, eval_set: str, rater: str, kind: str) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # statsmodels on a one-class table
        s = kappa_summary(
            m["score_h"].astype(int),
            m["score_j"].astype(int),
            clusters=m["source_id_j"].to_numpy(),
            n_boot=int(acfg.n_boot),
            seed=int(acfg.seed),
        )
    min_n = int(acfg.get("human_min_n") or 0)
    both_constant = m["score_h"].nunique() == 1 and m["score_j"].nunique() == 1
    return {
        "raters": ["human", rater],
        "rater": rater,
        "judge_kind": kind,
        "scope": scope,
        "eval_set": eval_set,
        **{k: _finite(v) for k, v in s.items()},
        "kappa_defined": not (both_constant and s["accuracy"] == 1.0),
        "labels_one_class": bool(m["score_h"].nunique() == 1),
        "small_n": s["n"] < min_n,
    }


def human_label_agreement(df: pd.DataFrame, labels: pd.DataFrame, acfg, files: list[str]) -> dict:
    """Every judge in `df` against the human labels: per eval set, and pooled over the answerable sets.
    On `unanswerable` the judge's verdict is its abstention detector's (judge_kind "abstention")."""
    scored = df[df["score"].notna()]
    counts = labels["answer_check"].value_counts().to_dict()
    usable = labels[labels["answer_check"] != "stale"]
    out = {
        "label_files": files,
        "n_labels": len(labels),
        "n_labels_by_eval_set": {e: int(n) for e, n in labels.groupby("eval_set").size().items()},
        "n_stale": int(counts.get("stale", 0)),
        "n_unverified": int(counts.get("unverified", 0)),
        "min_n": int(acfg.get("human_min_n") or 0),
        "comparisons": [],
        "raters_without_overlap": [],
    }
    if out["n_stale"]:
        log.warning(
            "%d human labels are of answers that have changed since they were labelled: left out",
            out["n_stale"],
        )
    keys = ["arm", "eval_set", "item_id"]
    for rater in sorted(scored["rater"].unique()):
        j = scored[scored.rater == rater]
        m = usable.merge(j, on=keys, suffixes=("_h", "_j"))
        if m.empty:
            out["raters_without_overlap"].append(rater)
            continue
        for e in sorted(
            m["eval_set"].unique(), key=lambda e: (P.EVAL_SETS.index(e) if e in P.EVAL_SETS else 99, e)
        ):
            kind = "abstention" if e == ABSTAIN_SET else "correctness"
            block = _human_block(m[m.eval_set == e], acfg, "eval_set", e, rater, kind)
            block["n_labels"] = int((usable["eval_set"] == e).sum())
            out["comparisons"].append(block)
        answerable = m[m.eval_set != ABSTAIN_SET]
        if answerable["eval_set"].nunique() > 1:
            block = _human_block(answerable, acfg, "pooled", POOLED_ANSWERABLE, rater, "correctness")
            block["n_labels"] = int((usable["eval_set"] != ABSTAIN_SET).sum())
            out["comparisons"].append(block)
    return out


def write_confusion_csv(path: Path, comparisons: list[tuple[str, dict]]) -> None:
    with atomic_write(path) as f:
        w = csv.writer(f)
        w.writerow(["comparison", "rater_a", "rater_b", "label_a", "label_b", "count"])
        for name, s in comparisons:
            ra, rb = s["raters"]
            m = s["confusion"]["matrix"]
            for i, j in itertools.product((0, 1), (0, 1)):
                w.writerow([name, ra, rb, i, j, m[i][j]])


def main(cfg: DictConfig) -> dict:
    acfg = cfg.judge.agreement
    result: dict = {"reference_vs_labels": reference_vs_labels(acfg)}
    df, files = load_judgments(list(acfg.judgment_globs))
    result["judge_pairs"] = judge_pairs(df, acfg)
    result["raters_found"] = sorted(df["rater"].unique().tolist()) if len(df) else []
    result["human"] = None
    inputs = [P.stamp("judge_agreement"), repo_relative(DEFAULT_PARAMS), *files]
    label_files = [*P.label_files(), *([Path(acfg.human_labels_csv)] if acfg.get("human_labels_csv") else [])]
    result["human_labels"] = None
    if label_files:
        from rbiqa.judge.labels import load_label_files

        labels, gen_files = mark_stale(load_label_files(label_files))
        usable = labels[labels["answer_check"] != "stale"]
        result["human"] = human_agreement(df, usable[list(HUMAN_COLUMNS)], acfg)
        result["human_labels"] = human_label_agreement(df, labels, acfg, [f.as_posix() for f in label_files])
        inputs += [*label_files, *gen_files]
    if acfg.get("calibration_csv") and Path(acfg.calibration_csv).is_file():
        inputs.append(acfg.calibration_csv)
    comparisons = [("reference_vs_labels", result["reference_vs_labels"])]
    comparisons += [("judge_pair", s) for s in result["judge_pairs"]]
    comparisons += [("human", s) for s in result["human"] or []]
    hl = (result["human_labels"] or {}).get("comparisons", [])
    comparisons += [(f"human_labels:{s['eval_set']}", s) for s in hl]
    write_json(P.JUDGE_AGREEMENT, result)
    write_confusion_csv(JUDGE_CONFUSION, comparisons)
    outputs = [P.JUDGE_AGREEMENT, JUDGE_CONFUSION]
    extra = {
        "n_judgment_files": len(files),
        "n_human_labels": (result["human_labels"] or {}).get("n_labels", 0),
        "kappa_reference_vs_labels": result["reference_vs_labels"]["kappa"],
    }
    write_manifest(
        P.manifest_for(P.JUDGE_AGREEMENT), "judge_agreement", to_container(cfg), inputs, outputs, extra
    )
    for c in (result["human_labels"] or {}).get("comparisons", []):
        log.info(
            "%s vs human labels on %s (%s): kappa %.3f [%.3f, %.3f], n %d%s",
            c["rater"],
            c["eval_set"],
            c["judge_kind"],
            c["kappa"],
            *c["kappa_ci"],
            c["n"],
            " (small n)" if c["small_n"] else "",
        )
    r = result["reference_vs_labels"]
    log.info(
        "reference judge vs labels: kappa %.3f [%.3f, %.3f], accuracy %.3f",
        r["kappa"],
        *r["kappa_ci"],
        r["accuracy"],
    )
    return result


if __name__ == "__main__":
    stage_main(main)()
