"""Stage 3: k rephrasings per train question, plus one held-out rephrasing per para_eval and val_para
source.

Candidates are generated in rounds. Each round asks only for what is still missing (optionally
oversampled), at a new seed and a higher temperature, within an optional total candidate budget; every
candidate passes the quality filters (rbiqa.rephrase.filters) or is logged to rejected.jsonl with its
reasons. After `max_attempts` rounds, a question that is still short of k is reported as a shortfall,
and training uses what exists.

A para_eval or val_para source needs k+1 paraphrases: one becomes its held-out wording and never enters
training (a test_paraphrase item, or a val_paraphrase row for checkpoint selection). It is the one the
backend designates (the shipped paraphrases have one), else the one least similar to the others and to
the original.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf
from pydantic import ValidationError

from rbiqa import paths as P
from rbiqa import stages
from rbiqa.config import instantiate, to_container
from rbiqa.io import InputError, read_jsonl, write_json, write_jsonl
from rbiqa.llm import ResultCache
from rbiqa.manifest import write_manifest
from rbiqa.rephrase.backends import GenRequest, item_seed, n_candidates
from rbiqa.rephrase.filters import FilterConfig, ParaphraseFilter, extract_candidate
from rbiqa.rephrase.prompts import load_prompt
from rbiqa.rephrase.report import build_report, prompt_identity
from rbiqa.schemas import QARecord
from rbiqa.stages import flat
from rbiqa.textsim import edit_similarity

log = logging.getLogger(__name__)

ROW_FIELDS = (
    "question",
    "answer",
    "regulation_area",
    "applicable_to",
    "category",
    "estimated_difficulty",
    "trained_eval",
)


class SplitRow(QARecord):
    """A row of data/interim/split/train.jsonl."""

    split: str
    para_eval: bool
    val_para: bool = False
    trained_eval: bool = False


def needs_heldout(row: dict[str, Any]) -> bool:
    return bool(row["para_eval"] or row.get("val_para"))


@dataclass
class SourceState:
    row: dict[str, Any]
    need: int
    accepted: list[dict[str, Any]] = field(default_factory=list)

    @property
    def missing(self) -> int:
        return max(self.need - len(self.accepted), 0)


def children_cpu_seconds() -> float:
    """CPU time of finished child processes (the hf_local backend's workers)."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def load_train(path) -> list[dict[str, Any]]:
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run the split stage first (`python -m rbiqa.split`)")
    rows, errors, seen = [], [], set()
    for i, raw in enumerate(read_jsonl(path), 1):
        try:
            row = SplitRow.model_validate(raw).model_dump()
        except ValidationError as e:
            errors.append(f"line {i}: {e.errors()[0]['loc']}: {e.errors()[0]['msg']}")
            continue
        if row["id"] in seen:
            errors.append(f"line {i}: duplicate source id {row['id']!r}")
        seen.add(row["id"])
        rows.append(row)
    if errors:
        raise InputError(f"{path}: {len(errors)} invalid rows (re-run split); first: {errors[:5]}")
    if not rows:
        raise InputError(f"{path} has no rows: nothing to rephrase")
    return rows


def priority(st: SourceState, seed: int) -> tuple[int, int, int]:
    """Who is served first in each allocation pass: a source still without its held-out rephrasing
    (a test_paraphrase item or a val_paraphrase row), then the fewest training rephrasings so far, then a
    seeded hash of the id (not file order: the corpus is grouped by regulation area, and a short budget
    must not fall on the last areas)."""
    para = needs_heldout(st.row)
    n_train = len(st.accepted) - (1 if para and st.accepted else 0)
    return (0 if para and not st.accepted else 1, n_train, item_seed(seed, st.row["id"]))


def allocate(todo: list[SourceState], wants: dict[str, int], budget_left: int | None) -> dict[str, int]:
    """Candidates per source for one round. Without a budget, everyone gets what they want. With one,
    sources still without a held-out rephrasing get all they want first (each is a test_paraphrase item or
    a val_paraphrase row), then everyone else breadth-first: one more candidate per source per pass, in
    priority order, until the budget ends."""
    if budget_left is None:
        return wants
    alloc = dict.fromkeys(wants, 0)
    for st in todo:
        if needs_heldout(st.row) and not st.accepted:
            sid = st.row["id"]
            alloc[sid] = min(wants[sid], budget_left)
            budget_left -= alloc[sid]
    while budget_left > 0:
        grew = False
        for st in todo:
            sid = st.row["id"]
            if alloc[sid] < wants[sid] and budget_left > 0:
                alloc[sid] += 1
                budget_left -= 1
                grew = True
        if not grew:
            break
    return alloc


def build_backend(rcfg: DictConfig, prompt, cache: ResultCache):
    """The backend that `rephrase.impl` describes (its `_target_`s name the classes), given the stage's
    prompt and cache; heavy imports happen only for the one chosen."""
    backend = instantiate(rcfg.impl, _partial_=True)(prompt=prompt, cache=cache)
    if backend.name != rcfg.backend:  # the backend built keys the cache; rephrase.backend must say the same
        raise InputError(f"rephrase.backend is {rcfg.backend!r}, but rephrase.impl builds {backend.name!r}")
    return backend


def round_temperature(rcfg: DictConfig, attempt: int) -> float:
    t = float(rcfg.temperature) + attempt * float(rcfg.temperature_step)
    return round(min(t, float(rcfg.max_temperature)), 4)


def choose_heldout(original: str, accepted: list[str]) -> int:
    """Index of the paraphrase farthest from everything that stays in training (original + the rest)."""

    def closeness(i: int) -> float:
        others = [original] + [a for j, a in enumerate(accepted) if j != i]
        return max(edit_similarity(accepted[i], o) for o in others)

    return min(range(len(accepted)), key=lambda i: (closeness(i), i))


def variant_row(src: dict[str, Any], idx: int, question: str) -> dict[str, Any]:
    row = {"row_id": f"{src['id']}:v{idx}", "source_id": src["id"], "variant_idx": idx}
    row.update({k: src[k] for k in ROW_FIELDS})
    row["question"] = question
    return row


def heldout_row(src: dict[str, Any], question: str) -> dict[str, Any]:
    """The held-out wording of a source: a test_paraphrase item (para_eval) or a val_paraphrase row."""
    row = variant_row(src, -1, question)
    suffix = "para" if src["para_eval"] else "valpara"
    row.update(row_id=f"{src['id']}:{suffix}", original_question=src["question"])
    del row["variant_idx"], row["trained_eval"]
    return row


def run(cfg: DictConfig) -> dict[str, Any]:
    t_start, c_start = time.perf_counter(), time.process_time() + children_cpu_seconds()
    rcfg = cfg.rephrase
    k = int(rcfg.k)
    if k < 0:
        raise InputError(f"rephrase.k must be >= 0, got {k}")
    rows = load_train(P.SPLIT_TRAIN)
    if rcfg.get("max_sources"):
        rows = rows[: int(rcfg.max_sources)]
    prompt = load_prompt(str(rcfg.prompt_version))
    filt = ParaphraseFilter(FilterConfig.from_config(OmegaConf.to_container(rcfg.filters, resolve=True)))
    states = {r["id"]: SourceState(r, k + (1 if needs_heldout(r) else 0)) for r in rows}

    cache = ResultCache(P.REPHRASE_CACHE / str(rcfg.backend))
    backend = build_backend(rcfg, prompt, cache)
    rejected: list[dict[str, Any]] = []
    rounds: list[dict[str, Any]] = []
    factor = float(rcfg.candidates_per_missing)
    cap = int(rcfg.max_candidates_per_call)
    budget = None if rcfg.get("max_candidates_total") is None else int(rcfg.max_candidates_total)
    seed = int(cfg.seed)
    used = 0
    try:
        for attempt in range(int(rcfg.max_attempts)):
            todo = sorted((s for s in states.values() if s.missing > 0), key=lambda s: priority(s, seed))
            temp = round_temperature(rcfg, attempt)
            wants = {s.row["id"]: n_candidates(s.missing, factor, cap) for s in todo}
            left = None if budget is None else budget - used
            if left is not None and attempt == 0:  # keep some budget for retries (held-outs go first)
                left -= int(budget * float(rcfg.get("retry_reserve", 0.0)))
            alloc = allocate(todo, wants, left)
            reqs = [
                GenRequest(
                    s.row["id"],
                    s.row["question"],
                    alloc[s.row["id"]],
                    attempt,
                    temp,
                    seed,
                    heldout=needs_heldout(s.row) and not any(a["heldout"] for a in s.accepted),
                )
                for s in todo
                if alloc[s.row["id"]] > 0
            ]
            used += sum(r.n for r in reqs)
            if not reqs:
                break
            log.info(
                "round %d: %d questions short, %d asked for, %d candidates, T=%.2f",
                attempt, len(todo), len(reqs), sum(r.n for r in reqs), temp,
            )  # fmt: skip
            n_acc = n_rej = 0
            for res in backend.generate(reqs):
                st = states[res.request.source_id]
                if res.error is not None:
                    rejected.append(_reject(res.request, None, None, ["call_failed"], res.error))
                    n_rej += 1
                    continue
                for slot, raw in enumerate(res.texts):
                    cand = extract_candidate(raw or "")
                    others = [a["question"] for a in st.accepted]
                    reasons = filt.check(cand, st.row["question"], st.row["answer"], others)
                    if not reasons and st.missing > 0:
                        held = res.heldout_slot == slot
                        st.accepted.append(
                            {"question": cand, "attempt": attempt, "slot": slot, "heldout": held}
                        )
                        n_acc += 1
                    else:
                        rejected.append(_reject(res.request, slot, raw, reasons or ["surplus"], None, cand))
                        n_rej += 1
            rounds.append({"attempt": attempt, "temperature": temp, "questions_short": len(todo),
                           "questions_asked": len(reqs), "candidates": sum(r.n for r in reqs),
                           "accepted": n_acc, "rejected": n_rej})  # fmt: skip
    finally:
        if hasattr(backend, "close"):
            backend.close()  # joins worker processes, so their CPU time is in RUSAGE_CHILDREN below
        cache_stats = cache.stats()
        cache.close()

    train_rows, para_rows, val_para_rows = [], [], []
    designated = 0
    for st in states.values():
        src, acc = st.row, [a["question"] for a in st.accepted]
        train_rows.append(variant_row(src, 0, src["question"]))
        if needs_heldout(src) and acc:
            flagged = [i for i, a in enumerate(st.accepted) if a["heldout"]]
            designated += bool(flagged)
            h = flagged[0] if flagged else choose_heldout(src["question"], acc)
            held = acc.pop(h)
            row = heldout_row(src, held)
            (para_rows if src["para_eval"] else val_para_rows).append(row)
        train_rows += [variant_row(src, i, q) for i, q in enumerate(acc[:k], 1)]

    report = build_report(cfg, backend, prompt, states, rejected, rounds, cache_stats, k)
    report["heldout"] = {
        "test_paraphrase": len(para_rows),
        "val_paraphrase": len(val_para_rows),
        "designated_by_backend": designated,
    }
    report["budget"] = {
        "max_candidates_total": budget,
        "candidates_used": used,
        "exhausted": budget is not None and used >= budget and any(s.missing for s in states.values()),
    }
    report["wall_seconds"] = round(time.perf_counter() - t_start, 2)
    # CPU seconds of this process (all threads): on a busy machine, closer to the idle cost than wall time
    report["cpu_seconds"] = round(time.process_time() + children_cpu_seconds() - c_start, 2)
    write_jsonl(P.REPHRASE_TRAIN, train_rows)
    write_jsonl(P.REPHRASE_TEST_PARA, para_rows)
    write_jsonl(P.REPHRASE_VAL_PARA, val_para_rows)
    write_jsonl(P.REPHRASE_REJECTED, rejected)
    write_json(P.REPHRASE_REPORT, report)
    inputs, outputs = flat(stages.rephrase_inputs(rcfg)), flat(stages.rephrase_outputs())
    write_manifest(
        P.REPHRASE_MANIFEST,
        "rephrase",
        to_container(cfg),
        inputs,
        outputs,
        {
            **backend.describe(),
            **prompt_identity(backend, prompt),
            "temperature": float(rcfg.temperature),
            "temperatures": [r["temperature"] for r in rounds],
            "k": k,
            "model_calls": report["calls"]["model_calls"],
            "shortfall_sources": report["shortfall"]["sources_short"],
        },
    )
    log.info(
        "rephrase: %d train rows (%d sources), %d test_paraphrase, %d rejected; calls=%s cache_hits=%s; %.1fs",
        len(train_rows), len(states), len(para_rows), len(rejected), report["calls"]["model_calls"],
        cache_stats["hits"], report["wall_seconds"],
    )  # fmt: skip
    return report


def _reject(req: GenRequest, slot, raw, reasons, error=None, cand=None) -> dict[str, Any]:
    return {
        "source_id": req.source_id,
        "attempt": req.attempt,
        "slot": slot,
        "temperature": req.temperature,
        "original": req.question,
        "candidate": cand,
        "raw": raw,
        "reasons": reasons,
        "error": error,
    }
