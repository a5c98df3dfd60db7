"""Judge accuracy corrected for the judge's own errors (Rogan-Gladen), set beside the raw accuracy.

A judge with sensitivity Se = P(says correct | correct) and specificity Sp = P(says wrong | wrong)
reports, for answers whose true accuracy is pi, an expected accuracy raw = Se*pi + (1 - Sp)*(1 - pi),
so pi = (raw + Sp - 1) / (Se + Sp - 1) (Rogan & Gladen 1978). Se and Sp are the reference judge's
out-of-fold verdicts against the Gemini labels of its calibration answers (reference_params.json,
`cv_oof`), estimated separately per answer kind: the calibration holds base and fine-tuned answers
(its `model` column), and a judge can err differently on each. Which kind's error rates an arm gets is
fixed in advance in the stats config (`corrected.answer_kinds`, by arm.kind), never chosen by result.
Those answers came from another model than this run's, so the correction carries a transfer assumption
that the report states.

Uncertainty: each of B replicates resamples the calibration questions (clusters: both answers of a
question go together, so both kinds keep about their share) and the eval items (source clusters, one
resample per eval set shared by every arm, so differences are paired), and recomputes Se, Sp, raw and
the correction. Estimates and replicates outside [0, 1] are clipped, and the clipping is recorded.
A replicate where Se + Sp - 1 <= 0 (the judge no better than chance on that resample, or a kind with no
correct or no wrong answer in it) does not identify pi: it is counted as degenerate and, being
uninformative, sits at the bottom of the range for the lower bound and at the top for the upper one.
When more than the tail mass (1 - level) / 2 of replicates are degenerate the interval is the whole range.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from rbiqa.io import InputError, read_json, sha256_file
from rbiqa.judge.reference.calibration_data import MODEL_CODES, decode_models
from rbiqa.stats.paired import direction, pair_items
from rbiqa.stats.study import Study
from rbiqa.study import ARM_KINDS

log = logging.getLogger(__name__)

METHOD = "Rogan-Gladen: (raw + Sp - 1) / (Se + Sp - 1), clipped to [0, 1]"
ANSWER_KINDS = tuple(MODEL_CODES.values())  # the calibration's answer models
# Error rates an arm can be corrected with: one answer kind's, or every calibration answer's ("pooled")
# for arms whose answers are like neither kind.
POOLED = "pooled"
RATE_KINDS = (*ANSWER_KINDS, POOLED)
CLIP_BELOW, CLIP_ABOVE = "below_0", "above_1"


# ---------------------------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class CorrectionSettings:
    """The `corrected:` block of conf/stats."""

    answer_kinds: Mapping[str, str]  # arm kind -> answer kind whose error rates apply
    skip_eval_sets: Mapping[str, str] = field(default_factory=dict)  # {eval set: why it is not corrected}
    calibration_answers: str | None = None  # who wrote the calibration answers (report text)
    calibration_labels: str | None = None  # who labelled them (the reference standard)

    @classmethod
    def from_config(cls, stats_cfg: Mapping) -> CorrectionSettings:
        c = stats_cfg.get("corrected")
        if not c:
            raise InputError("stats.corrected is missing: it must map every arm kind to an answer kind")
        mapping = dict(c.get("answer_kinds") or {})
        bad_keys = sorted(set(mapping) - set(ARM_KINDS))
        if bad_keys:
            raise InputError(
                f"stats.corrected.answer_kinds: unknown arm kind(s) {bad_keys}; known: {ARM_KINDS}"
            )
        bad = {k: v for k, v in mapping.items() if v not in RATE_KINDS}
        if bad:
            raise InputError(
                f"stats.corrected.answer_kinds: unknown answer kind(s) {bad}; known: {list(RATE_KINDS)}"
            )
        unmapped = [k for k in ARM_KINDS if k not in mapping]
        if unmapped:
            raise InputError(f"stats.corrected.answer_kinds: no answer kind for arm kind(s) {unmapped}")
        return cls(
            answer_kinds=mapping,
            skip_eval_sets=_skip_reasons(c.get("skip_eval_sets")),
            calibration_answers=c.get("calibration_answers"),
            calibration_labels=c.get("calibration_labels"),
        )

    def arm_answer_kinds(self, arm_kinds: Mapping[str, str]) -> dict[str, str]:
        """{arm: answer kind} from {arm: arm.kind}; an arm kind the mapping lacks is an error."""
        out = {}
        for arm, kind in arm_kinds.items():
            if kind not in self.answer_kinds:
                raise InputError(
                    f"arm {arm!r} has kind {kind!r}, which stats.corrected.answer_kinds does not map "
                    f"(it maps {sorted(self.answer_kinds)})"
                )
            out[arm] = self.answer_kinds[kind]
        return out


# ------------------------------------------------------------------------------------------- calibration


@dataclass(frozen=True)
class Calibration:
    """The judge's verdicts (y_pred) against the reference labels (y_true) on labelled answers."""

    y_true: np.ndarray
    y_pred: np.ndarray
    cluster: np.ndarray
    kind: np.ndarray  # answer kind per row (ANSWER_KINDS)
    source: str = "arrays"
    sha256: str | None = None

    def __post_init__(self) -> None:
        n = len(self.y_true)
        if not n:
            raise InputError(f"{self.source}: calibration data are empty")
        if not (len(self.y_pred) == len(self.cluster) == len(self.kind) == n):
            raise InputError(f"{self.source}: y_true, y_pred, cluster and model must have the same length")
        for name, arr in (("y_true", self.y_true), ("y_pred", self.y_pred)):
            if not np.isin(arr, (0, 1)).all():
                raise InputError(f"{self.source}: {name} must be 0/1")
        unknown = sorted(set(np.unique(self.kind)) - set(ANSWER_KINDS))
        if unknown:
            raise InputError(f"{self.source}: unknown answer kind(s) {unknown}; known: {list(ANSWER_KINDS)}")

    @classmethod
    def from_arrays(cls, y_true, y_pred, cluster, kind, source: str = "arrays") -> Calibration:
        return cls(
            np.asarray(y_true, dtype=int),
            np.asarray(y_pred, dtype=int),
            np.asarray(cluster),
            np.asarray(kind, dtype=object),
            source,
        )

    @classmethod
    def from_params(cls, path: str | Path) -> Calibration:
        """The `cv_oof` block of a reference judge parameter file (strings of 0/1 and b/f letters)."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"reference judge parameters not found: {path}")
        oof = read_json(path).get("cv_oof")
        keys = ("y_true", "y_pred", "cluster", "model")
        if not isinstance(oof, dict) or any(k not in oof for k in keys):
            have = sorted(oof) if isinstance(oof, dict) else None
            raise InputError(
                f"{path}: cv_oof needs keys {list(keys)} (has {have}); refit the reference judge"
            )

        def bits(name: str) -> np.ndarray:
            v = oof[name]
            chars = list(v) if isinstance(v, str) else v
            if not set(map(str, chars)) <= {"0", "1"}:
                raise InputError(f"{path}: cv_oof.{name} must be a string of 0/1")
            return np.array([int(c) for c in chars], dtype=int)

        models = decode_models(oof["model"], f"{path}: cv_oof.model")
        return cls(
            bits("y_true"),
            bits("y_pred"),
            np.asarray(oof["cluster"]),
            np.array(models, dtype=object),
            path.as_posix(),
            sha256_file(path),
        )

    def rows_of(self, rate_kind: str) -> np.ndarray:
        """The calibration answers whose verdicts give `rate_kind`'s error rates."""
        return np.ones(len(self.kind), dtype=bool) if rate_kind == POOLED else self.kind == rate_kind

    def cluster_counts(self) -> tuple[np.ndarray, list[str]]:
        """(n_clusters x 4*kinds) per-cluster counts tp, pos, tn, neg for each kind, and column names."""
        _, inv = np.unique(self.cluster, return_inverse=True)
        n = int(inv.max()) + 1
        cols, names = [], []
        for k in RATE_KINDS:
            m = self.rows_of(k)
            for name, sel in (
                ("tp", m & (self.y_true == 1) & (self.y_pred == 1)),
                ("pos", m & (self.y_true == 1)),
                ("tn", m & (self.y_true == 0) & (self.y_pred == 0)),
                ("neg", m & (self.y_true == 0)),
            ):
                cols.append(np.bincount(inv, weights=sel.astype(float), minlength=n))
                names.append(f"{k}/{name}")
        return np.column_stack(cols), names


@dataclass(frozen=True)
class CorrectionInput:
    """What compute_all needs to correct: the calibration (None = no correction, with `reason`), the
    answer kind of every arm, the sets to leave alone, and provenance for the report."""

    calibration: Calibration | None
    arm_answer_kind: Mapping[str, str] = field(default_factory=dict)
    skip_eval_sets: Mapping[str, str] = field(default_factory=dict)  # {set: why not corrected}
    provenance: Mapping[str, object] = field(default_factory=dict)
    reason: str | None = None

    @property
    def available(self) -> bool:
        return self.calibration is not None


def _skip_reasons(raw) -> dict[str, str]:
    """stats.corrected.skip_eval_sets: {eval set: why its accuracy is not corrected}; the reason is
    printed in the report, so a set cannot be left out without saying why."""
    if not raw:
        return {}
    if not isinstance(raw, Mapping) or not all(isinstance(v, str) and v.strip() for v in raw.values()):
        raise InputError(
            "stats.corrected.skip_eval_sets must map each eval set to the reason it is not corrected, "
            f"e.g. {{unanswerable: judged by the abstention detector}}; got {raw!r}"
        )
    return {str(k): str(v).strip() for k, v in raw.items()}


def correction_input(
    stats_cfg: Mapping,
    judge_cfg: Mapping,
    arm_kinds: Mapping[str, str],
    applied_to_model: str | None = None,
    default_params: Path | None = None,
) -> CorrectionInput:
    """Settings validated always; calibration read only for the reference judge (the one it measures)."""
    s = CorrectionSettings.from_config(stats_cfg)
    backend = str(judge_cfg.get("backend"))
    provenance = {
        "judge_backend": backend,
        "calibration_answers": s.calibration_answers,
        "calibration_labels": s.calibration_labels,
        "applied_to_model": applied_to_model,
        "answer_kinds": dict(s.answer_kinds),
    }
    common = {
        "arm_answer_kind": s.arm_answer_kinds(arm_kinds),
        "skip_eval_sets": dict(s.skip_eval_sets),
        "provenance": provenance,
    }
    if backend != "reference":
        why = (
            f"the {backend} judge is the reference standard the calibration labels come from, so its own "
            "error rates are not measured"
            if backend == "gemini"
            else f"no calibration data measure the errors of the {backend} judge"
        )
        return CorrectionInput(None, reason=why, **common)
    path = Path(judge_cfg.get("params_path") or default_params or _default_params())
    cal = Calibration.from_params(path)
    provenance["calibration_file"] = path.name
    provenance["calibration_sha256"] = cal.sha256
    return CorrectionInput(cal, **common)


def _default_params() -> Path:
    from rbiqa.judge.reference.model import DEFAULT_PARAMS  # lazy: the judge package imports sklearn

    return DEFAULT_PARAMS


# --------------------------------------------------------------------------------------------- estimator


def rogan_gladen(raw, sens, spec):
    """Unclipped Rogan-Gladen estimate; NaN where Se + Sp - 1 <= 0 (or an input is NaN)."""
    raw, sens, spec = (np.asarray(x, dtype=float) for x in (raw, sens, spec))
    j = sens + spec - 1
    ok = j > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        est = np.where(ok, (raw + spec - 1) / np.where(ok, j, 1.0), np.nan)
    return est if est.ndim else float(est)


def clip_unit(x: float) -> tuple[float, str | None]:
    """(x clipped to [0, 1], which side was clipped or None)."""
    if x < 0:
        return 0.0, CLIP_BELOW
    if x > 1:
        return 1.0, CLIP_ABOVE
    return float(x), None


def conservative_interval(
    reps: np.ndarray, degenerate: np.ndarray, level: float, bounds: tuple[float, float]
) -> tuple[float, float]:
    """Percentile interval with each degenerate replicate at the bottom of `bounds` for the lower
    quantile and at the top for the upper one."""
    tail = (1 - level) / 2
    lo = np.quantile(np.where(degenerate, bounds[0], reps), tail)
    hi = np.quantile(np.where(degenerate, bounds[1], reps), 1 - tail)
    return float(lo), float(hi)


def _weights(rng: np.random.Generator, n_clusters: int, size: int) -> np.ndarray:
    """(size x n_clusters) multiplicities of a with-replacement resample of clusters, per replicate."""
    idx = rng.integers(0, n_clusters, size=(size, n_clusters))
    flat = (np.arange(size)[:, None] * n_clusters + idx).ravel()
    return np.bincount(flat, minlength=size * n_clusters).reshape(size, n_clusters).astype(float)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


@dataclass
class ErrorRates:
    """Point estimates and B bootstrap replicates of Se and Sp for one answer kind."""

    kind: str
    n: int
    n_pos: int
    n_neg: int
    sens: float | None
    spec: float | None
    sens_reps: np.ndarray
    spec_reps: np.ndarray

    @property
    def degenerate(self) -> np.ndarray:
        j = self.sens_reps + self.spec_reps - 1
        return ~(j > 0)  # NaN (no positive or negative resampled) counts as degenerate

    @property
    def youden(self) -> float | None:
        return None if self.sens is None or self.spec is None else self.sens + self.spec - 1

    def to_dict(self, level: float) -> dict:
        tail = (1 - level) / 2

        def q(reps):
            r = reps[~np.isnan(reps)]
            return (None, None) if not r.size else tuple(float(v) for v in np.quantile(r, [tail, 1 - tail]))

        j_reps = self.sens_reps + self.spec_reps - 1
        deg = self.degenerate
        (s_lo, s_hi), (p_lo, p_hi), (j_lo, j_hi) = q(self.sens_reps), q(self.spec_reps), q(j_reps)
        return {
            "answer_kind": self.kind,
            "n": self.n,
            "n_pos": self.n_pos,
            "n_neg": self.n_neg,
            "sensitivity": self.sens,
            "sens_lo": s_lo,
            "sens_hi": s_hi,
            "specificity": self.spec,
            "spec_lo": p_lo,
            "spec_hi": p_hi,
            "youden": self.youden,
            "youden_lo": j_lo,
            "youden_hi": j_hi,
            "n_degenerate": int(deg.sum()),
            "frac_degenerate": float(deg.mean()),
        }


def error_rates(
    cal: Calibration, n_resamples: int, rng: np.random.Generator, chunk: int = 1000
) -> dict[str, ErrorRates]:
    """Se and Sp per answer kind, with replicates resampling calibration clusters."""
    counts, names = cal.cluster_counts()
    col = {n: i for i, n in enumerate(names)}
    reps = np.empty((n_resamples, counts.shape[1]))
    for start in range(0, n_resamples, chunk):
        stop = min(start + chunk, n_resamples)
        reps[start:stop] = _weights(rng, counts.shape[0], stop - start) @ counts
    total = counts.sum(axis=0)
    out = {}
    for k in RATE_KINDS:
        tp, pos, tn, neg = (col[f"{k}/{s}"] for s in ("tp", "pos", "tn", "neg"))
        out[k] = ErrorRates(
            kind=k,
            n=int(cal.rows_of(k).sum()),
            n_pos=int(total[pos]),
            n_neg=int(total[neg]),
            sens=float(total[tp] / total[pos]) if total[pos] else None,
            spec=float(total[tn] / total[neg]) if total[neg] else None,
            sens_reps=_ratio(reps[:, tp], reps[:, pos]),
            spec_reps=_ratio(reps[:, tn], reps[:, neg]),
        )
    return out


# ----------------------------------------------------------------------------------------------- records


def _corrected_reps(raw_reps: np.ndarray, rates: ErrorRates) -> tuple[np.ndarray, np.ndarray]:
    """Clipped replicates of the corrected accuracy and the mask of degenerate ones."""
    est = rogan_gladen(raw_reps, rates.sens_reps, rates.spec_reps)
    degenerate = np.isnan(est)
    return np.clip(np.nan_to_num(est, nan=0.0), 0.0, 1.0), degenerate


def _point(raw: float, rates: ErrorRates) -> tuple[float | None, float | None, str | None]:
    """(clipped estimate, unclipped estimate, clipped side) on the observed data."""
    if rates.sens is None or rates.spec is None:
        return None, None, None
    est = rogan_gladen(raw, rates.sens, rates.spec)
    if np.isnan(est):
        return None, None, None
    clipped, side = clip_unit(est)
    return clipped, float(est), side


def _uncorrectable_flag(rates: ErrorRates) -> str | None:
    if rates.sens is None or rates.spec is None:
        return "uncalibrated_kind"
    if not rates.youden > 0:
        return "judge_uninformative"
    return None


def _pct(reps: np.ndarray, level: float) -> tuple[float | None, float | None]:
    r = reps[~np.isnan(reps)]
    if not r.size:
        return None, None
    tail = (1 - level) / 2
    lo, hi = np.quantile(r, [tail, 1 - tail])
    return float(lo), float(hi)


@dataclass
class _Column:
    """One statistic's per-cluster sums over an eval set's clusters (numerator and count)."""

    num: np.ndarray
    den: np.ndarray


def _cluster_sums(index: pd.Index, source_ids, values) -> _Column:
    idx = index.get_indexer(np.asarray(source_ids))
    n = len(index)
    values = np.asarray(values, dtype=float)
    return _Column(np.bincount(idx, weights=values, minlength=n), np.bincount(idx, minlength=n).astype(float))


_EMPTY_ACC = dict.fromkeys(
    (
        "raw_lo",
        "raw_hi",
        "corrected",
        "corrected_unclipped",
        "corrected_lo",
        "corrected_hi",
        "clipped",
        "frac_reps_clipped",
        "n_degenerate",
    )
)
_EMPTY_PAIR = dict.fromkeys(
    (
        "diff_raw",
        "diff_raw_lo",
        "diff_raw_hi",
        "corrected_arm",
        "corrected_ref",
        "diff",
        "diff_unclipped",
        "diff_lo",
        "diff_hi",
        "clipped_arm",
        "clipped_ref",
        "direction",
        "n_degenerate",
    )
)


def _accuracy_record(rec: dict, raw_reps: np.ndarray | None, rates: ErrorRates, level: float) -> dict:
    """Raw and corrected accuracy of one arm on one set; `raw_reps` None = nothing judged."""
    if raw_reps is None:
        return rec | _EMPTY_ACC | {"flag": "no_judged_items"}
    raw_lo, raw_hi = _pct(raw_reps, level)
    flag = _uncorrectable_flag(rates)
    if flag:
        return rec | _EMPTY_ACC | {"raw_lo": raw_lo, "raw_hi": raw_hi, "flag": flag}
    est, unclipped, side = _point(rec["raw"], rates)
    unclipped_reps = rogan_gladen(raw_reps, rates.sens_reps, rates.spec_reps)
    creps, deg = _corrected_reps(raw_reps, rates)
    lo, hi = conservative_interval(creps, deg, level, (0.0, 1.0))
    ok = unclipped_reps[~deg]
    return rec | {
        "raw_lo": raw_lo,
        "raw_hi": raw_hi,
        "corrected": est,
        "corrected_unclipped": unclipped,
        "corrected_lo": lo,
        "corrected_hi": hi,
        "clipped": side,
        "frac_reps_clipped": float(((ok < 0) | (ok > 1)).mean()) if ok.size else None,
        "n_degenerate": int(deg.sum()),
        "flag": None,
    }


def _paired_record(
    rec: dict,
    pairs: pd.DataFrame,
    reps: tuple[np.ndarray, np.ndarray] | None,
    rates: tuple[ErrorRates, ErrorRates],
    level: float,
) -> dict:
    """Raw and corrected difference arm - ref on the items judged in both; `reps` None = no such item."""
    if reps is None:
        return rec | _EMPTY_PAIR | {"flag": "no_judged_items"}
    ra, rr = reps
    raw_a, raw_r = float(pairs["y_arm"].mean()), float(pairs["y_ref"].mean())
    d_lo, d_hi = _pct(ra - rr, level)
    out = rec | _EMPTY_PAIR | {"diff_raw": raw_a - raw_r, "diff_raw_lo": d_lo, "diff_raw_hi": d_hi}
    flag = _uncorrectable_flag(rates[0]) or _uncorrectable_flag(rates[1])
    if flag:
        return out | {"flag": flag}
    ea, ua, sa = _point(raw_a, rates[0])
    er, ur, sr = _point(raw_r, rates[1])
    xa, dega = _corrected_reps(ra, rates[0])
    xr, degr = _corrected_reps(rr, rates[1])
    deg = dega | degr
    lo, hi = conservative_interval(xa - xr, deg, level, (-1.0, 1.0))
    return out | {
        "corrected_arm": ea,
        "corrected_ref": er,
        "diff": ea - er,
        "diff_unclipped": ua - ur,
        "diff_lo": lo,
        "diff_hi": hi,
        "clipped_arm": sa,
        "clipped_ref": sr,
        "direction": direction(lo, hi),
        "n_degenerate": int(deg.sum()),
        "flag": None,
    }


def _eval_set_block(
    study: Study,
    eval_set: str,
    pairs: Sequence[tuple[str, str]],
    arm_kind: Mapping[str, str],
    rates: Mapping[str, ErrorRates],
) -> tuple[list[dict], list[dict]]:
    """Every arm's record and every pair's on one eval set, from one cluster resample shared by all."""
    s = study.settings
    index = pd.Index(pd.unique(study.results.loc[study.results["eval_set"] == eval_set, "source_id"]))
    cols: list[_Column] = []
    col_of: dict = {}
    judged = {}
    for arm in study.arms:
        cell = study.cell(arm, eval_set)
        judged[arm] = cell[cell["score"].notna()]
        if len(judged[arm]):
            col_of[arm] = len(cols)
            cols.append(_cluster_sums(index, judged[arm]["source_id"], judged[arm]["score"]))
    paired = {}
    for arm, ref in pairs:
        paired[(arm, ref)] = pair_items(study.cell(arm, eval_set), study.cell(ref, eval_set))
        p = paired[(arm, ref)][0]
        if len(p):
            col_of[(arm, ref)] = (len(cols), len(cols) + 1)
            cols += [
                _cluster_sums(index, p["source_id"], p["y_arm"]),
                _cluster_sums(index, p["source_id"], p["y_ref"]),
            ]
    B = s.n_resamples
    reps = np.empty((B, len(cols)))
    if cols:
        num = np.column_stack([c.num for c in cols])
        den = np.column_stack([c.den for c in cols])
        rng = study.rng(f"corrected/{eval_set}")
        for start in range(0, B, s.chunk):
            stop = min(start + s.chunk, B)
            w = _weights(rng, len(index), stop - start)
            reps[start:stop] = _ratio(w @ num, w @ den)

    acc_records = []
    for arm in study.arms:
        j = judged[arm]
        rec = {
            "arm": arm,
            "eval_set": eval_set,
            "answer_kind": arm_kind[arm],
            "n_judged": int(len(j)),
            "n_clusters": int(j["source_id"].nunique()),
            "raw": float(j["score"].mean()) if len(j) else None,
        }
        raw_reps = reps[:, col_of[arm]] if arm in col_of else None
        acc_records.append(_accuracy_record(rec, raw_reps, rates[arm_kind[arm]], s.ci_level))
    pair_records = []
    for arm, ref in pairs:
        p, counts = paired[(arm, ref)]
        ka, kr = arm_kind[arm], arm_kind[ref]
        rec = {"arm": arm, "ref": ref, "eval_set": eval_set, "arm_kind": ka, "ref_kind": kr, **counts}
        cr = col_of.get((arm, ref))
        r = (reps[:, cr[0]], reps[:, cr[1]]) if cr else None
        pair_records.append(_paired_record(rec, p, r, (rates[ka], rates[kr]), s.ci_level))
    return acc_records, pair_records


def _contrast(study: Study, paired: list[dict], eval_set: str) -> dict | None:
    """The main arm vs base on one eval set, with how far the correction moved the difference."""
    main, base = study.main_arm, study.settings.base_arm
    rec = next((p for p in paired if (p["arm"], p["ref"], p["eval_set"]) == (main, base, eval_set)), None)
    if rec is None:
        return None
    shift = rec["diff"] - rec["diff_raw"] if rec["diff"] is not None else None
    raw_dir = (
        direction(rec["diff_raw_lo"], rec["diff_raw_hi"]) if rec.get("diff_raw_lo") is not None else None
    )
    return rec | {"shift": shift, "direction_raw": raw_dir}


def compute_corrected(
    study: Study, pairs: Sequence[tuple[str, str]], correction: CorrectionInput | None
) -> dict:
    """The `corrected` metrics section: error rates per answer kind, corrected accuracy per arm and eval
    set, and corrected paired differences for `pairs` (same eval resample for both arms)."""
    s = study.settings
    if correction is None or not correction.available:
        reason = correction.reason if correction is not None else "no calibration data were given"
        return {
            "available": False,
            "reason": reason,
            "method": METHOD,
            "provenance": dict(correction.provenance) if correction else {},
        }
    cal = correction.calibration
    unknown = [a for a in study.arms if a not in correction.arm_answer_kind]
    if unknown:
        raise InputError(f"no answer kind for arm(s) {unknown}: check stats.corrected.answer_kinds")
    stale = _stale_judgments(study, cal)
    if stale:
        return {
            "available": False,
            "reason": stale,
            "method": METHOD,
            "provenance": dict(correction.provenance),
        }
    rates = error_rates(cal, s.n_resamples, study.rng("corrected/calibration"), s.chunk)
    sets = [e for e in study.eval_sets if e not in correction.skip_eval_sets]
    records, paired = [], []
    for e in sets:
        acc, par = _eval_set_block(study, e, pairs, correction.arm_answer_kind, rates)
        records += acc
        paired += par
    for kind, r in rates.items():
        if kind in correction.arm_answer_kind.values() and r.youden is not None and r.youden > 0:
            frac = float(r.degenerate.mean())
            if frac > (1 - s.ci_level) / 2:
                log.warning(
                    "%.1f%% of %s calibration replicates are degenerate: intervals span [0, 1]",
                    100 * frac,
                    kind,
                )
    return {
        "available": True,
        "reason": None,
        "method": METHOD,
        "bootstrap": {
            "n_resamples": s.n_resamples,
            "seed": s.seed,
            "ci_level": s.ci_level,
            "calibration_clusters": int(np.unique(cal.cluster).size),
            "eval_clusters": "source_id; one resample per eval set shared by every arm (paired differences)",
            "degenerate_rule": "Se + Sp - 1 <= 0 in a replicate: at the bottom of the range for the lower "
            "bound, at the top for the upper",
        },
        "calibration": {"n": int(len(cal.y_true)), "source": Path(cal.source).name, "sha256": cal.sha256},
        "provenance": dict(correction.provenance),
        "arm_answer_kind": {a: correction.arm_answer_kind[a] for a in study.arms},
        "skipped_eval_sets": {e: r for e, r in correction.skip_eval_sets.items() if e in study.eval_sets},
        "error_rates": [rates[k].to_dict(s.ci_level) for k in RATE_KINDS],
        "records": records,
        "paired": paired,
        "orientation": "diff = corrected(arm) - corrected(ref); diff_raw = raw(arm) - raw(ref), same items",
        "headline": _contrast(study, paired, s.headline_eval_set),
        "manipulation": _contrast(study, paired, s.manipulation_eval_set),
        "n_clipped": int(sum(r["clipped"] is not None for r in records)),
    }


def _stale_judgments(study: Study, cal: Calibration) -> str | None:
    """A reference judge id names its parameter file's sha256 (`...@<12 hex>`); judgments made with
    other parameters than the calibrated ones cannot be corrected with these error rates."""
    if cal.sha256 is None:
        return None
    models = {str(m) for m in study.results["judge_model"].dropna().unique()}
    tagged = {m: m.rsplit("@", 1)[1] for m in models if re.fullmatch(r".+@[0-9a-f]{8,64}", m)}
    other = sorted(m for m, tag in tagged.items() if not cal.sha256.startswith(tag))
    if other:
        return (
            f"judgments were made by {other[0]}, not by the judge whose calibration is in {Path(cal.source).name} "
            f"(sha256 {cal.sha256[:12]}): rerun the judge stage"
        )
    return None
