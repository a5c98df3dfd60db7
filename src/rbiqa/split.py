"""Stage 2: split by SOURCE question, before any rephrasing.

The reference study rephrased first and split afterwards, so paraphrases of an evaluation question could
land in training and inflate the score. Here every source id is assigned once, from a hash of (seed, id).
All of its later paraphrases inherit that side by construction.

Within a stratum (regulation_area × category × difficulty band), sources are ordered by their hash and cut
at the configured quantiles. That gives exact proportions per stratum while staying a pure function of the
ids and the seed. A stratum smaller than `split.min_stratum` is merged into a coarser one
(area × category, then area, then everything), so tiny strata do not all round to "train".

Sides: `test_unseen` and `val` are never trained (val gives the unseen-fact loss curve); `train` sources
are trained. `split.max_train_sources` caps the trained sources (a seeded subsample; the rest are listed
in the report as unused). Among the trained sources, in the order of their quantile of another hash
within their stratum (exact counts, strata interleaved), each gets at most one evaluation role:
- `para_eval`: asked through one held-out rephrasing (test_paraphrase) and verbatim (test_trained);
- `val_para`: its held-out rephrasing is the checkpoint-selection set (val_paraphrase), so selection
  rewards recall of trained facts in new words and never looks at a test item;
- `trained_eval`: asked verbatim (test_trained), the manipulation check. Every para_eval source is also
  trained_eval, so the verbatim and paraphrase rungs pair by source.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import Counter, defaultdict
from typing import Any

from omegaconf import DictConfig

from rbiqa import paths as P
from rbiqa import stages
from rbiqa.config import stage_main, to_container
from rbiqa.io import InputError, read_jsonl, write_json, write_jsonl
from rbiqa.manifest import write_manifest
from rbiqa.stages import flat

log = logging.getLogger(__name__)

SIDES = ("train", "val", "test_unseen")  # "unused": trained-side sources beyond split.max_train_sources


def source_hash(seed: int, source_id: str) -> float:
    """Uniform in [0, 1), a pure function of (seed, id): stable across machines and runs."""
    digest = hashlib.sha256(f"{seed}:{source_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def difficulty_band(d: int) -> str:
    return "easy" if d <= 2 else "medium" if d <= 4 else "hard"


def strata_keys(rows: list[dict], min_stratum: int) -> dict[str, tuple]:
    """Finest stratum with at least `min_stratum` members, per source id."""
    levels = [
        lambda r: (r["regulation_area"], r["category"], difficulty_band(r["estimated_difficulty"])),
        lambda r: (r["regulation_area"], r["category"]),
        lambda r: (r["regulation_area"],),
        lambda r: ("*",),
    ]
    counts = [Counter(f(r) for r in rows) for f in levels]
    keys = {}
    for r in rows:
        for f, c in zip(levels, counts, strict=True):
            k = f(r)
            if c[k] >= min_stratum or k == ("*",):
                keys[r["id"]] = k
                break
    return keys


ROLES = ("para_eval", "val_para", "trained_eval")


def check_fracs(fracs: dict[str, float]) -> None:
    f_unseen, f_val = fracs["test_unseen"], fracs["val"]
    f_para, f_vpara, f_trained = fracs["test_paraphrase"], fracs["val_paraphrase"], fracs["test_trained"]
    problems = []
    if not (0 <= f_unseen < 1 and 0 <= f_val < 1 and f_unseen + f_val < 1):
        problems.append("test_unseen and val must be in [0, 1) with test_unseen + val < 1")
    if not all(0 <= f <= 1 for f in (f_para, f_vpara, f_trained)):
        problems.append("test_paraphrase, val_paraphrase and test_trained must be in [0, 1]")
    if f_trained < f_para:
        problems.append(
            "test_trained must be >= test_paraphrase (every paraphrase source is also asked verbatim)"
        )
    if f_trained + f_vpara > 1:
        problems.append(
            "test_trained + val_paraphrase must be <= 1 (a selection source is never a test item)"
        )
    if problems:
        raise InputError(f"invalid split fractions {fracs}: " + "; ".join(problems))


def _quantiles(rows: list[dict], seed: int, salt: str, min_stratum: int) -> dict[str, tuple[float, tuple]]:
    """source id -> (its quantile in (0, 1) within its stratum, the stratum), ordered by a salted hash."""
    keys = strata_keys(rows, min_stratum)
    groups: dict[tuple, list[str]] = defaultdict(list)
    for r in rows:
        groups[keys[r["id"]]].append(r["id"])
    out = {}
    for key, ids in groups.items():
        ids.sort(key=lambda i: (source_hash(seed, f"{salt}{i}"), i))
        for rank, sid in enumerate(ids):
            out[sid] = ((rank + 0.5) / len(ids), key)
    return out


def assign(
    rows: list[dict],
    seed: int,
    fracs: dict[str, float],
    min_stratum: int,
    max_train_sources: int | None = None,
) -> dict[str, dict]:
    """source id -> {"split": train | val | test_unseen | unused, "stratum": key, and each of ROLES}."""
    check_fracs(fracs)
    f_unseen, cut_val = fracs["test_unseen"], fracs["test_unseen"] + fracs["val"]
    out: dict[str, dict] = {}
    for sid, (q, key) in _quantiles(rows, seed, "", min_stratum).items():
        side = "test_unseen" if q < f_unseen else "val" if q < cut_val else "train"
        out[sid] = {"split": side, "stratum": key, **dict.fromkeys(ROLES, False)}
    train = [r for r in rows if out[r["id"]]["split"] == "train"]
    if max_train_sources is not None and len(train) > max_train_sources:
        train.sort(key=lambda r: (source_hash(seed, f"train:{r['id']}"), r["id"]))
        for r in train[max_train_sources:]:
            out[r["id"]]["split"] = "unused"
        train = train[:max_train_sources]
    # Roles by exact counts: the trained sources ordered by their quantile within their stratum (so the
    # strata interleave), then cut. Per-stratum cuts would starve a narrow role in small strata.
    q = _quantiles(train, seed, "role:", min_stratum)
    order = sorted(q, key=lambda sid: (q[sid][0], source_hash(seed, f"role:{sid}"), sid))
    n = len(order)
    n_para, n_trained = round(fracs["test_paraphrase"] * n), round(fracs["test_trained"] * n)
    n_vpara = round(fracs["val_paraphrase"] * n)
    for rank, sid in enumerate(order):
        out[sid]["para_eval"] = rank < n_para
        out[sid]["trained_eval"] = rank < n_trained
        out[sid]["val_para"] = n_trained <= rank < n_trained + n_vpara
    return out


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.casefold()).strip()


def leakage_check(sides: dict[str, list[dict]]) -> dict[str, Any]:
    ids = {s: {r["id"] for r in rows} for s, rows in sides.items()}
    texts = {s: {_norm(r["question"]) for r in rows} for s, rows in sides.items()}
    shared_ids: dict[str, int] = {}
    shared_text: dict[str, int] = {}
    for i, a in enumerate(SIDES):
        for b in SIDES[i + 1 :]:
            shared_ids[f"{a}|{b}"] = len(ids[a] & ids[b])
            shared_text[f"{a}|{b}"] = len(texts[a] & texts[b])
    return {
        "shared_source_ids": shared_ids,
        "shared_source_ids_total": sum(shared_ids.values()),
        "shared_normalised_questions": shared_text,
    }


def run(cfg: DictConfig) -> dict[str, Any]:
    rows = read_jsonl(P.RAW_QA)
    if not rows:
        raise InputError(f"{P.RAW_QA} is empty")
    s = cfg.split
    fracs = {
        "test_unseen": s.test_unseen_frac,
        "val": s.val_frac,
        "test_paraphrase": s.test_paraphrase_frac,
        "val_paraphrase": s.val_paraphrase_frac,
        "test_trained": s.test_trained_frac,
    }
    cap = s.get("max_train_sources")
    plan = assign(rows, int(cfg.seed), fracs, int(s.min_stratum), None if cap is None else int(cap))
    sides: dict[str, list[dict]] = {side: [] for side in (*SIDES, "unused")}
    for r in rows:
        p = plan[r["id"]]
        sides[p["split"]].append({**r, "split": p["split"], **{k: p[k] for k in ROLES}})
    unused = sides.pop("unused")
    leak = leakage_check(sides)
    if leak["shared_source_ids_total"]:
        raise RuntimeError(f"split leaks source ids across sides: {leak['shared_source_ids']}")
    for side in SIDES:
        if not sides[side] and (side == "train" or fracs.get(side, 0) > 0):
            raise InputError(f"split '{side}' is empty: corpus of {len(rows)} rows is too small")
    para = [r for r in sides["train"] if r["para_eval"]]

    def by(side_rows: list[dict], field: str) -> dict[str, int]:
        return dict(sorted(Counter(str(r[field]) for r in side_rows).items()))

    report = {
        "seed": int(cfg.seed),
        "fractions": fracs,
        "max_train_sources": cap,
        "counts": {side: len(v) for side, v in sides.items()}
        | {
            "test_paraphrase_sources": len(para),
            "val_paraphrase_sources": sum(r["val_para"] for r in sides["train"]),
            "test_trained_sources": sum(r["trained_eval"] for r in sides["train"]),
            "unused": len(unused),
        },
        # trained-side sources beyond max_train_sources: in no split, listed so that none is lost unseen
        "unused_source_ids": sorted(r["id"] for r in unused),
        "per_regulation_area": {side: by(v, "regulation_area") for side, v in sides.items()},
        "per_category": {side: by(v, "category") for side, v in sides.items()},
        "per_difficulty": {side: by(v, "estimated_difficulty") for side, v in sides.items()},
        "strata": {
            " / ".join(k): dict(Counter(plan[i]["split"] for i in plan if plan[i]["stratum"] == k))
            for k in sorted({p["stratum"] for p in plan.values()})
        },
        "leakage": leak,
    }
    write_jsonl(P.SPLIT_TRAIN, sides["train"])
    write_jsonl(P.SPLIT_VAL, sides["val"])
    write_jsonl(P.SPLIT_TEST_UNSEEN, sides["test_unseen"])
    write_jsonl(P.SPLIT_PARA_SOURCES, para)
    write_json(P.SPLIT_REPORT, report)
    write_manifest(
        P.SPLIT_MANIFEST,
        "split",
        to_container(cfg),
        flat(stages.split_inputs()),
        flat(stages.split_outputs()),
        {"counts": report["counts"], "shared_source_ids_total": 0},
    )
    log.info("split: %s", report["counts"])
    return report


@stage_main
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
