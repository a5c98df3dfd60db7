"""Fit the offline reference judge to labelled judgments and ship its parameters as JSON.

`python -m rbiqa.judge.reference.fit --csv ../shared/calibration/seed_judgments_dev.csv`

The logistic regression is small enough to store as plain numbers, so the judge stage needs neither
the labelled data nor a pickle. The decision threshold is tuned for Cohen's kappa, and the reported
cross-validation is nested (the threshold of each outer fold is picked on its training folds only)
and grouped by item_id, so both answers to one question are always on the same side of a split.

Three estimates are stored, each pooled and per answer model (base or fine-tuned; the `model` column
is used only to report agreement, never as a feature or threshold):
- `cv`: nested CV over the whole file; its out-of-fold verdicts (`cv_oof`) are the judge's measured
  error rates that the stats stage corrects accuracies with;
- `cv_development`: nested CV over the development slice only, on which the features were chosen;
- `holdout`: the model fitted on the development slice, scored once on the held-out slice (a fixed
  fifth of the questions, by a hash of item_id), which no modelling choice looked at.
The shipped parameters are then fitted on every row.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, cohen_kappa_score, confusion_matrix
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tqdm.auto import tqdm

from rbiqa import paths as P
from rbiqa.config import setup_logging
from rbiqa.io import sha256_file, write_json
from rbiqa.judge.reference import DEFAULT_PARAMS
from rbiqa.judge.reference.calibration_data import encode_models, load_calibration_csv
from rbiqa.judge.reference.embeddings import EMBEDDING_MODEL_NAME, get_embedder
from rbiqa.judge.reference.features import Triple, embedding_scores, feature_matrix
from rbiqa.stats.kappa import agreement_by_group, kappa_summary

log = logging.getLogger(__name__)

PARAMS_PATH = DEFAULT_PARAMS
EMBED_CACHE = P.CACHE / "judge_fit" / "embeddings.npz"  # fit-time only; not the judgment cache
THRESHOLDS = np.round(np.arange(0.20, 0.801, 0.01), 2)
HOLDOUT_SALT = "holdout:"  # held-out slice: sha256(salt + item_id) % HOLDOUT_MODULUS == 0
HOLDOUT_MODULUS = 5


def holdout_mask(item_ids) -> np.ndarray:
    """The fixed fifth of the questions (both answers of each) kept out of every modelling choice."""
    digest = (hashlib.sha256((HOLDOUT_SALT + str(i)).encode()).hexdigest() for i in item_ids)
    return np.array([int(h, 16) % HOLDOUT_MODULUS == 0 for h in digest])


def make_model(c: float, seed: int):
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000, random_state=seed))


def best_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """Threshold that maximises kappa; ties go to the one nearest 0.5 so the choice is stable."""
    scores = [(cohen_kappa_score(y, (p >= t).astype(int)), -abs(t - 0.5), t) for t in THRESHOLDS]
    return float(max(scores)[2])


def oof_probabilities(x, y, groups, c: float, seed: int, n_splits: int) -> np.ndarray:
    p = np.zeros(len(y))
    cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for tr, te in cv.split(x, y, groups):
        p[te] = make_model(c, seed).fit(x[tr], y[tr]).predict_proba(x[te])[:, 1]
    return p


def nested_cv(x, y, groups, c: float, seed: int, n_splits: int) -> tuple[np.ndarray, np.ndarray, list]:
    """Out-of-fold probabilities and hard predictions whose thresholds never saw the test fold."""
    p = np.zeros(len(y))
    pred = np.zeros(len(y), dtype=int)
    fold_thresholds = []
    cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for tr, te in cv.split(x, y, groups):
        inner = oof_probabilities(x[tr], y[tr], groups[tr], c, seed + 1, n_splits)
        t = best_threshold(y[tr], inner)
        fold_thresholds.append(t)
        p[te] = make_model(c, seed).fit(x[tr], y[tr]).predict_proba(x[te])[:, 1]
        pred[te] = (p[te] >= t).astype(int)
    return p, pred, fold_thresholds


def compute_features(df, progress: bool = True) -> tuple[np.ndarray, list[str]]:
    embedder = get_embedder()
    EMBED_CACHE.parent.mkdir(parents=True, exist_ok=True)
    loaded = embedder.load_memo(EMBED_CACHE)
    log.info("embedding cache %s: %d vectors", EMBED_CACHE, loaded)
    triples = [Triple(r.question, r.ground_truth, r.generated_answer) for r in df.itertuples(index=False)]
    # Embed in chunks and checkpoint the cache: on 2 shared cores this takes many minutes, and an
    # interrupted fit should resume rather than start over.
    chunk = 128
    for i in tqdm(range(0, len(triples), chunk), desc="embedding chunks", disable=not progress):
        embedding_scores(triples[i : i + chunk], embedder)
        embedder.save_memo(EMBED_CACHE)
    x, names = feature_matrix(triples, embedder, progress=progress)
    return x, names


def _summary(y, pred, groups, model, n_boot: int, seed: int) -> dict:
    out = kappa_summary(y, pred, clusters=groups, n_boot=n_boot, seed=seed)
    out["per_model"] = agreement_by_group(y, pred, model, clusters=groups, n_boot=n_boot, seed=seed)
    return out


def fit(csv: Path, c: float, seed: int, n_splits: int, n_boot: int) -> dict:
    df = load_calibration_csv(csv)
    y = df["judge_score"].to_numpy()
    groups = df["item_id"].to_numpy()
    model_col = df["model"].astype(str).to_numpy() if "model" in df else np.full(len(df), "all")
    x, names = compute_features(df)

    p_oof, pred, fold_thresholds = nested_cv(x, y, groups, c, seed, n_splits)
    cv_summary = _summary(y, pred, groups, model_col, n_boot, seed)
    cv_summary.update(
        fold_thresholds=fold_thresholds, n_splits=n_splits, grouped_by="item_id", nested_threshold=True
    )

    held = holdout_mask(groups)
    dev = ~held
    _, dev_pred, _ = nested_cv(x[dev], y[dev], groups[dev], c, seed, n_splits)
    dev_summary = _summary(y[dev], dev_pred, groups[dev], model_col[dev], n_boot, seed)
    dev_threshold = best_threshold(y[dev], oof_probabilities(x[dev], y[dev], groups[dev], c, seed, n_splits))
    dev_model = make_model(c, seed).fit(x[dev], y[dev])
    held_pred = (dev_model.predict_proba(x[held])[:, 1] >= dev_threshold).astype(int)
    held_summary = _summary(y[held], held_pred, groups[held], model_col[held], n_boot, seed)
    held_summary.update(
        threshold=dev_threshold, rule=f"sha256({HOLDOUT_SALT!r} + item_id) % {HOLDOUT_MODULUS} == 0"
    )

    threshold = best_threshold(y, oof_probabilities(x, y, groups, c, seed, n_splits))
    model = make_model(c, seed).fit(x, y)
    scaler, lr = model[0], model[1]
    _, group_codes = np.unique(groups, return_inverse=True)
    return {
        "version": 2,
        "features": names,
        "scaler_mean": scaler.mean_.tolist(),
        "scaler_scale": scaler.scale_.tolist(),
        "coef": lr.coef_[0].tolist(),
        "intercept": float(lr.intercept_[0]),
        "threshold": threshold,
        "C": c,
        "seed": seed,
        "embedding_model": EMBEDDING_MODEL_NAME,
        "training_data": {
            "file": csv.name,
            "sha256": sha256_file(csv),
            "n_rows": int(len(y)),
            "n_items": int(len(set(groups))),
            "positive_rate": float(y.mean()),
            "positive_rate_by_model": {m: float(y[model_col == m].mean()) for m in sorted(set(model_col))},
        },
        "cv": cv_summary,
        "cv_development": dev_summary,
        "holdout": held_summary,
        # Out-of-fold labels/predictions, so judge_agreement and the judge-error correction of the stats
        # stage can work without the CSV. `model`: b = base answer, f = fine-tuned answer, per row.
        "cv_oof": {
            "y_true": "".join(map(str, y.tolist())),
            "y_pred": "".join(map(str, pred.tolist())),
            "p": [round(float(v), 4) for v in p_oof],
            "cluster": group_codes.tolist(),
            "model": encode_models(model_col) if "model" in df else "",
        },
        "train_accuracy": float(accuracy_score(y, (model.predict_proba(x)[:, 1] >= threshold).astype(int))),
        "train_confusion": confusion_matrix(y, (model.predict_proba(x)[:, 1] >= threshold)).tolist(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", type=Path, required=True, help="labelled judgments (seed_judgments_dev.csv)")
    ap.add_argument("--out", type=Path, default=PARAMS_PATH, help="where to write the parameters")
    ap.add_argument("--C", type=float, default=0.3, help="inverse L2 strength of the logistic regression")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--n-boot", type=int, default=2000, help="cluster-bootstrap resamples for the kappa CI")
    args = ap.parse_args(argv)
    setup_logging()
    params = fit(args.csv, args.C, args.seed, args.folds, args.n_boot)
    write_json(args.out, params)
    log.info("wrote %s (threshold %.2f)", args.out, params["threshold"])
    for block in ("cv", "cv_development", "holdout"):
        b = params[block]
        gaps = ", ".join(
            f"{m}: judge {100 * (s['positive_rate_other']):.1f}% vs labels {100 * s['positive_rate_reference']:.1f}%"
            f" (gap {100 * s['rate_gap']:+.1f} [{100 * s['rate_gap_ci'][0]:+.1f}, {100 * s['rate_gap_ci'][1]:+.1f}])"
            for m, s in b["per_model"].items()
        )
        log.info("%s: kappa %.3f [%.3f, %.3f], n=%d; %s", block, b["kappa"], *b["kappa_ci"], b["n"], gaps)
    print(json.dumps({k: params[k] for k in ("cv", "cv_development", "holdout")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
