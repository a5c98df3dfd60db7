"""judge_agreement job: how far the judges can be trusted, as Cohen's kappa with CIs.

`python -m rbiqa.judge.agreement experiment=<exp>` writes results/judge/agreement.json and
results/judge/confusion.csv:
  (a) the reference judge against the Gemini labels of the dev file, from the grouped, nested
      cross-validation stored in reference_params.json (or recomputed when
      judge.agreement.calibration_csv is set and present);
  (b) every pair of judges (backend + model) that scored the same items in the configured judgment
      files;
  (c) every judge against a user-supplied human-label CSV, if configured.
The reference rater of each comparison is the first one named (labels, human, or first judge).
"""

from __future__ import annotations

import csv
import glob
import itertools
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from rbiqa import paths as P
from rbiqa.config import stage_main, to_container
from rbiqa.io import InputError, atomic_write, iter_jsonl, read_json, write_json
from rbiqa.judge.agreement_stats import kappa_summary
from rbiqa.judge.reference import DEFAULT_PARAMS
from rbiqa.judge.stage import repo_relative
from rbiqa.manifest import write_manifest
from rbiqa.schemas import Judgment

log = logging.getLogger(__name__)

JUDGE_CONFUSION = P.JUDGE_CONFUSION
HUMAN_COLUMNS = ("arm", "eval_set", "item_id", "score")


def reference_vs_labels(acfg: DictConfig, params_path: Path = DEFAULT_PARAMS) -> dict:
    params = read_json(params_path)
    csv_path = acfg.get("calibration_csv")
    if csv_path and Path(csv_path).is_file():
        from rbiqa.judge.calibration_data import load_calibration_csv
        from rbiqa.judge.fit_reference import compute_features, nested_cv

        df = load_calibration_csv(csv_path)
        y, groups = df["judge_score"].to_numpy(), df["item_id"].to_numpy()
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
        source = f"stored out-of-fold predictions of {params_path.name} (nested grouped {params['cv']['n_splits']}-fold CV)"
    summary = kappa_summary(y, pred, clusters=groups, n_boot=int(acfg.n_boot), seed=int(acfg.seed))
    summary.update(
        source=source,
        raters=["gemini-2.0-flash labels (reference study)", "reference judge"],
        training_data=params["training_data"],
        threshold=params["threshold"],
    )
    return summary


def load_judgments(globs: list[str]) -> tuple[pd.DataFrame, list[Path]]:
    files = sorted({Path(f) for g in globs for f in glob.glob(g)})
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
    if acfg.get("human_labels_csv"):
        result["human"] = human_agreement(df, load_human_labels(acfg.human_labels_csv), acfg)
        inputs.append(acfg.human_labels_csv)
    if acfg.get("calibration_csv") and Path(acfg.calibration_csv).is_file():
        inputs.append(acfg.calibration_csv)
    comparisons = [("reference_vs_labels", result["reference_vs_labels"])]
    comparisons += [("judge_pair", s) for s in result["judge_pairs"]]
    comparisons += [("human", s) for s in result["human"] or []]
    write_json(P.JUDGE_AGREEMENT, result)
    write_confusion_csv(JUDGE_CONFUSION, comparisons)
    outputs = [P.JUDGE_AGREEMENT, JUDGE_CONFUSION]
    extra = {
        "n_judgment_files": len(files),
        "kappa_reference_vs_labels": result["reference_vs_labels"]["kappa"],
    }
    write_manifest(
        P.manifest_for(P.JUDGE_AGREEMENT), "judge_agreement", to_container(cfg), inputs, outputs, extra
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
