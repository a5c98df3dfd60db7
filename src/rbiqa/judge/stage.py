"""The judge job: one arm, one or more eval sets, from generations to judgments plus manifests.

`python -m rbiqa.judge experiment=<exp> arm=<arm> 'eval_sets=[a,b]'` (as the rule runs it; by hand
`+eval_set=<set>`, or `judge.eval_set`, selects one set). The backend is `judge.impl`, whose classes
conf/judge/<backend>.yaml names by Hydra `_target_`. The output is written atomically after every item
has a verdict or a missing record, and the manifest last, so a killed job leaves no judgments file that
looks finished; the cache keeps whatever was already judged for the rerun.
"""

from __future__ import annotations

import logging
import time

import numpy as np
from omegaconf import DictConfig

from rbiqa import paths as P
from rbiqa.config import instantiate, selected_eval_sets, to_container
from rbiqa.io import write_jsonl
from rbiqa.judge.inputs import load_eval_items, load_generations
from rbiqa.judge.protocol import JudgeBackend, JudgeConfigError
from rbiqa.judge.runner import open_judge_cache, run_judgments
from rbiqa.manifest import write_manifest
from rbiqa.stages import flat, judge_inputs

log = logging.getLogger(__name__)

JUDGE_CACHE_DIR = P.CACHE / "judge"


def build_backend(jcfg: DictConfig) -> JudgeBackend:
    """The judge that `judge.impl` describes (its `_target_`s name the classes). Heavy imports happen only
    for the one chosen, and an API judge without its key fails here, before any input is read."""
    backend = instantiate(jcfg.impl)
    if backend.name != jcfg.backend:  # the judge built names the verdicts; judge.backend must say the same
        raise JudgeConfigError(
            f"judge.backend is {jcfg.backend!r}, but judge.impl builds the {backend.name!r} judge"
        )
    return backend


def run(cfg: DictConfig) -> dict[str, dict]:
    """Every selected eval set of one arm, keyed by set: the pipeline runs one job per arm, so the
    backend (the reference judge's embedding model, or the API client) is set up once."""
    np.random.seed(int(cfg.get("seed", 0)))
    eval_sets = selected_eval_sets(cfg, "judge")
    arm = str(cfg.arm.name)
    backend = build_backend(cfg.judge)  # fails fast on a missing API key, before reading anything
    inputs = {e: (items := load_eval_items(e), load_generations(arm, e, items)) for e in eval_sets}
    return {e: judge_eval_set(cfg, backend, arm, e, *inputs[e]) for e in eval_sets}


def mark_abstentions(judgments: list, items, gens) -> list:
    """Judgments of answerable items with `abstained` set by the offline abstention detector, so that
    abstaining where an answer exists (the cost of training a model to say "I don't know") is measured
    the same way for every judge backend."""
    from rbiqa.judge.reference.abstention import THRESHOLD as ABSTAIN_THRESHOLD
    from rbiqa.judge.reference.abstention import AbstentionDetector
    from rbiqa.judge.reference.embeddings import get_embedder

    question = {it.item_id: it.question for it in items if it.reference is not None}
    todo = [j for j in judgments if j.item_id in question and gens.get(j.item_id) and gens[j.item_id].answer]
    if not todo:
        return judgments
    detector = AbstentionDetector(get_embedder())
    scored = detector.score([question[j.item_id] for j in todo], [gens[j.item_id].answer for j in todo])
    flag = {j.item_id: p >= ABSTAIN_THRESHOLD for j, (p, _) in zip(todo, scored, strict=True)}
    return [
        j.model_copy(update={"abstained": flag[j.item_id]}) if j.item_id in flag else j for j in judgments
    ]


def judge_eval_set(cfg: DictConfig, backend, arm: str, eval_set: str, items, gens) -> dict:
    t0 = time.perf_counter()
    scope, enabled = str(cfg.judge.get("cache_scope", "auto")), bool(cfg.judge.get("cache", True))
    with open_judge_cache(JUDGE_CACHE_DIR, scope, arm, enabled) as cache:
        judgments, stats = run_judgments(items, gens, arm, backend, cache)
    judgments = mark_abstentions(judgments, items, gens)
    out = P.judgments(arm, eval_set)
    write_jsonl(out, (j.model_dump() for j in judgments))
    counts = stats.as_dict()
    scored = [j.score for j in judgments if j.score is not None]
    extra = {
        "arm": arm,
        "eval_set": eval_set,
        "judge_backend": backend.name,
        "judge_model": backend.model_id,
        "prompt_hashes": {k: backend.prompt_hash(k) for k in ("reference", "abstention")},
        "counts": counts,
        "cache": cache.describe(),
        "mean_score_excluding_missing": float(np.mean(scored)) if scored else None,
        "abstained": sum(bool(j.abstained) for j in judgments),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    if hasattr(backend, "call_stats"):  # API judges: requests sent, retries, errors by kind
        extra["api"] = backend.call_stats()
    inputs = flat(judge_inputs(cfg.judge, arm, [eval_set]))
    write_manifest(P.manifest_for(out), "judge", to_container(cfg), inputs, [out], extra)
    log.info("wrote %s: %s", out, counts)
    return extra
