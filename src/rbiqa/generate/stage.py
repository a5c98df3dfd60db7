"""Orchestration of one generation job (an arm, one or more eval sets): inputs, prompts, model, cache,
outputs.

The model is loaded only when some item is not cached, so a rerun whose answers are all cached makes no
model call and does not even read the weights.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rbiqa import models
from rbiqa import paths as P
from rbiqa.config import selected_eval_sets, to_container
from rbiqa.generate.cache import ItemCache, cache_path, item_key, nll_cache_path
from rbiqa.generate.fewshot import FewShotSelector
from rbiqa.generate.inputs import (
    adapter_files,
    check_arm,
    load_eval_items,
    load_train_originals,
)
from rbiqa.generate.loader import LazyModel, uses_prefix_decoding, weights_plan
from rbiqa.generate.prompts import base_messages, fewshot_messages, rag_messages
from rbiqa.generate.retrieval import BM25Retriever
from rbiqa.generate.runner import Job, RunStats, run_jobs
from rbiqa.io import InputError, sha256_path, sha256_text, stable_json, write_jsonl
from rbiqa.manifest import write_manifest
from rbiqa.nf4 import model_fingerprint
from rbiqa.schemas import EvalItem, Generation
from rbiqa.stages import flat, generate_inputs
from rbiqa.study import PROMPTS, ArmSpec

log = logging.getLogger(__name__)


def build_prompts(
    cfg: DictConfig, kind: str, items: list[EvalItem]
) -> tuple[list[tuple[Any, tuple[str, ...]]], dict]:
    """(messages, context row_ids) per item, and a summary of the arm's prompt context for the manifest."""
    g = cfg.generate
    system = g.system_prompt
    prompt = PROMPTS[kind]
    if prompt == "base":
        return [(base_messages(system, it.question), ()) for it in items], {}
    pool = load_train_originals(P.CLEAN_TRAIN)
    if prompt == "fewshot":
        max_chars = g.fewshot.get("max_answer_chars")
        # never a test_trained item: its answer would be shown to the model next to another test item
        eligible = [
            r for r in pool if not r.get("trained_eval") and (not max_chars or len(r["answer"]) <= max_chars)
        ]
        selector = FewShotSelector(eligible, int(g.fewshot.k), int(cfg.seed))
        out = []
        for it in items:
            ex = selector.select(it.source_id)
            out.append((fewshot_messages(system, ex, it.question), tuple(str(r["row_id"]) for r in ex)))
        return out, {
            "pool_size": len(pool),
            "eligible": len(eligible),
            "excluded_test_trained": sum(bool(r.get("trained_eval")) for r in pool),
        }
    r = g.rag
    retriever = BM25Retriever(pool, stemmer=r.get("stemmer"), stopwords=r.get("stopwords"))
    out = []
    for it in items:
        hits = retriever.search(it.question, int(r.top_n))
        msgs = rag_messages(
            system,
            [h.doc for h in hits],
            it.question,
            template=r.template,
            passage_template=r.passage_template,
            empty_context=r.empty_context,
            max_passage_chars=r.get("max_passage_chars"),
        )
        out.append((msgs, tuple(h.row_id for h in hits)))
    n_empty = sum(1 for _, ids in out if not ids)
    return out, {"corpus_size": len(pool), "items_without_passages": n_empty}


def answer_budgets(g: DictConfig, items: list[EvalItem], tokenizer) -> list[int | None]:
    """Each item's decoding budget: min(max_new_tokens, ceil(factor x the reference answer's tokens) +
    margin), or `no_reference` for an item without one (unanswerable); all None without
    generate.answer_budget. A correct answer needs about the reference's length; the budget cuts only
    the ramble past it, which on CPU is most of the decoding time of the arms that do not stop."""
    b = g.get("answer_budget")
    if not b:
        return [None] * len(items)
    cap = int(g.max_new_tokens)
    out = []
    for it in items:
        if it.reference is None:
            n = int(b.no_reference)
        else:
            n_ref = len(tokenizer(it.reference, add_special_tokens=False)["input_ids"])
            n = math.ceil(float(b.factor) * n_ref) + int(b.margin)
        out.append(min(n, cap))
    return out


def decode_fingerprint(cfg: DictConfig, model_fp: str, adapter_fp: str | None, plan: dict) -> str:
    g = cfg.generate
    decode = {
        # the two decoders give the same greedy tokens in tests, but not provably bit for bit: keep apart
        "decoder": "prefix_cached" if uses_prefix_decoding(g) else "hf_generate",
        "max_new_tokens": g.max_new_tokens,
        "do_sample": g.do_sample,
        "generate_kwargs": OmegaConf.to_container(g.generate_kwargs, resolve=True)
        if g.get("generate_kwargs")
        else {},
    }
    if g.do_sample:
        decode.update(temperature=g.temperature, top_p=g.top_p, seed=cfg.seed)
    return sha256_text(
        stable_json(
            {"model": model_fp, "adapter": adapter_fp, "dtype": cfg.model.dtype, "weights": plan, **decode}
        )
    )


def to_generation(
    item: EvalItem,
    arm: str,
    model_id: str,
    row: dict | None,
    error: str | None,
    context_ids: tuple[str, ...],
    nll: dict | None = None,
) -> Generation:
    fields: dict[str, Any] = {
        "item_id": item.item_id,
        "source_id": item.source_id,
        "eval_set": item.eval_set,
        "arm": arm,
        "question": item.question,
        "model_id": model_id,
    }
    if row is not None:
        fields.update(
            answer=row["answer"],
            n_prompt_tokens=row.get("n_prompt_tokens"),
            n_new_tokens=row.get("n_new_tokens"),
            seconds=row.get("seconds"),
        )
    else:
        fields.update(answer=None, error=error or "no answer was produced")
    fields["context_ids"] = list(context_ids)
    if nll is not None:
        fields.update(reference_nll=nll["reference_nll"], reference_tokens=nll["reference_tokens"])
    return Generation(**fields)


@dataclass
class ArmContext:
    """What every eval set of one arm shares: the weights (loaded at most once per job) and their identity."""

    arm: str
    kind: str
    spec: ArmSpec
    model_dir: Path
    adapter_fp: str | None
    plan: dict[str, Any]
    fp: str
    model_id: str
    generator: LazyModel
    tokenizer: Any  # the base model's tokenizer (answer budgets count reference tokens with it)


def arm_context(cfg: DictConfig) -> ArmContext:
    arm = cfg.arm.get("name")
    kind = check_arm(arm, cfg.arm.get("kind"))
    model_path = Path(cfg.model.path)
    if not (model_path / "config.json").exists():
        raise InputError(f"no model at {model_path}: run `python -m rbiqa.fetch_model` first")
    adapter, adapter_fp = None, None
    spec = ArmSpec.model_validate(to_container(cfg.arm))
    adapter_arm = spec.adapter_arm
    if adapter_arm:
        files = adapter_files(adapter_arm)
        # config too: r and lora_alpha set the adapter's scale, so they change its outputs
        adapter = P.adapter_dir(adapter_arm)
        adapter_fp = sha256_text("".join(sha256_path(f) for f in files))
    plan = weights_plan(cfg.generate)
    model_fp = model_fingerprint(model_path)
    base_id = cfg.model.get("hf_id") or cfg.model.name
    return ArmContext(
        arm=arm,
        kind=kind,
        spec=spec,
        model_dir=model_path,
        adapter_fp=adapter_fp,
        plan=plan,
        fp=decode_fingerprint(cfg, model_fp, adapter_fp, plan),
        model_id=f"{base_id}+lora:{adapter_arm}@{adapter_fp[:12]}" if adapter_fp else base_id,
        generator=LazyModel(cfg, adapter, plan, model_fp),
        tokenizer=models.load_tokenizer(model_path),
    )


def run(cfg: DictConfig) -> dict[str, dict[str, Any]]:
    """Every selected eval set of one arm, in one process: the pipeline runs one job per arm, because
    importing torch and loading + NF4-round-tripping the weights cost about as much as answering a set."""
    eval_sets = selected_eval_sets(cfg, "generate")
    from transformers import set_seed

    set_seed(int(cfg.seed))
    if cfg.generate.get("num_threads"):
        import torch

        torch.set_num_threads(int(cfg.generate.num_threads))
    # every eval set is read and checked before the first answer is generated
    items = {e: load_eval_items(P.eval_set_path(e), e) for e in eval_sets}
    ctx = arm_context(cfg)
    return {e: run_eval_set(cfg, ctx, e, items[e]) for e in eval_sets}


def run_eval_set(cfg: DictConfig, ctx: ArmContext, eval_set: str, items: list[EvalItem]) -> dict[str, Any]:
    t_start = time.perf_counter()
    g = cfg.generate
    prompts, context_summary = build_prompts(cfg, ctx.kind, items)
    budgets = answer_budgets(g, items, ctx.tokenizer)
    jobs = [
        Job(it.item_id, item_key(ctx.fp, {"messages": msgs, "budget": b}), msgs, c, b)
        for it, (msgs, c), b in zip(items, prompts, budgets, strict=True)
    ]
    cache = ItemCache(cache_path(ctx.arm, eval_set))
    rows, stats = run_jobs(
        jobs, ctx.generator, cache, int(g.batch_size), progress=bool(g.get("progress", True))
    )

    nlls = (
        reference_losses(ctx, eval_set, items, jobs)
        if eval_set in (g.get("reference_loss_sets") or [])
        else {}
    )
    gens = [
        to_generation(
            it,
            ctx.arm,
            ctx.model_id,
            rows.get(j.key),
            stats.errors.get(j.key),
            j.context_ids,
            nlls.get(j.key),
        )
        for it, j in zip(items, jobs, strict=True)
    ]
    n_failed = sum(1 for x in gens if x.answer is None)
    max_frac = float(g.get("max_error_frac", 1.0))
    if n_failed > max_frac * len(gens):
        raise RuntimeError(
            f"{ctx.arm}/{eval_set}: {n_failed}/{len(gens)} items failed (limit generate.max_error_frac="
            f"{max_frac}); first error: {next(x.error for x in gens if x.answer is None)}. Finished answers "
            f"are cached in {cache.path}; fix the cause and rerun."
        )
    out = P.generations(ctx.arm, eval_set)
    write_jsonl(out, (x.model_dump() for x in gens))

    extra = run_summary(cfg, ctx.kind, eval_set, ctx.model_id, ctx.plan, ctx.generator, stats, gens, t_start)
    extra["adapter_sha256"] = ctx.adapter_fp
    extra["prompt_context"] = context_summary
    if PROMPTS[ctx.kind] != "base":
        extra["context_ids"] = {j.item_id: list(j.context_ids) for j in jobs}
    inputs = flat(generate_inputs(ctx.spec, [eval_set], ctx.model_dir))
    write_manifest(P.manifest_for(out), "generate", to_container(cfg), inputs, [out], extra)
    log.info("wrote %s: %d answers, %d failed", out, len(gens) - n_failed, n_failed)
    return extra


def reference_losses(
    ctx: ArmContext, eval_set: str, items: list[EvalItem], jobs: list[Job]
) -> dict[str, dict]:
    """{job key: teacher-forced loss of the item's reference} (rbiqa.generate.reference_loss), cached per
    item beside the answers; the model is loaded only for items not in the cache."""
    from rbiqa.generate.reference_loss import reference_nll

    cache = ItemCache(nll_cache_path(ctx.arm, eval_set))
    keyed = {j.key: (it, j, item_key(ctx.fp, {"messages": j.messages, "reference": it.reference}))
             for it, j in zip(items, jobs, strict=True) if it.reference}  # fmt: skip
    todo = [(it, j, k) for it, j, k in keyed.values() if cache.get(k) is None]
    if todo:
        model, tok = ctx.generator.loaded()
        scores = reference_nll(
            model, tok, [j.messages for _, j, _ in todo], [it.reference for it, _, _ in todo]
        )
        cache.add(
            [{"key": k, "item_id": it.item_id, **s} for (it, _, k), s in zip(todo, scores, strict=True)]
        )
        log.info("%s/%s: reference loss of %d answers", ctx.arm, eval_set, len(todo))
    return {jk: cache.get(k) for jk, (_, _, k) in keyed.items()}


def log_throughput(cfg, eval_set, tp, stats: RunStats, generator: LazyModel, total: float) -> None:
    import torch

    log.info(
        "throughput %s/%s: %s answers/s, %s new tokens/s; per CPU second %s answers, %s tokens "
        "(%d generated in %.1fs wall / %.1fs CPU, %d cached, %d failed, %d model calls; model load %.1fs; "
        "job %.1fs; batch %d, %d threads, %s)",
        cfg.arm.name,
        eval_set,
        tp["answers_per_s"],
        tp["tok_per_s"],
        tp["answers_per_cpu_s"],
        tp["tok_per_cpu_s"],
        stats.n_generated,
        stats.seconds,
        stats.cpu_seconds,
        stats.n_cached,
        stats.n_errors,
        stats.model_calls,
        generator.load_seconds,
        total,
        cfg.generate.batch_size,
        torch.get_num_threads(),
        models.device(),
    )


def run_summary(
    cfg, kind, eval_set, model_id, plan, generator: LazyModel, stats: RunStats, gens, t_start: float
) -> dict[str, Any]:
    import torch

    tp = stats.throughput()
    total = time.perf_counter() - t_start
    if not stats.n_generated:
        log.info(
            "%s/%s: nothing generated (%d cached, %d failed; %d model calls); job %.1fs",
            cfg.arm.name,
            eval_set,
            stats.n_cached,
            stats.n_errors,
            stats.model_calls,
            total,
        )
    else:
        log_throughput(cfg, eval_set, tp, stats, generator, total)
    return {
        "arm": cfg.arm.name,
        "arm_kind": kind,
        "eval_set": eval_set,
        "model_id": model_id,
        "device": models.device(),
        "dtype": cfg.model.dtype,
        "weights": {**plan, "n_roundtrip": generator.n_roundtrip},
        "adapter_merged": generator.merged,
        "n_items": len(gens),
        "n_answers": sum(1 for x in gens if x.answer is not None),
        "n_failed": sum(1 for x in gens if x.answer is None),
        "n_empty_answers": sum(1 for x in gens if x.answer == ""),
        "n_cached": stats.n_cached,
        "n_generated": stats.n_generated,
        "model_calls": stats.model_calls,
        "throughput": {
            **tp,
            "generate_seconds": round(stats.seconds, 3),
            "generate_cpu_seconds": round(stats.cpu_seconds, 3),
            "model_load_seconds": round(generator.load_seconds, 3),
            "job_seconds": round(total, 3),
            "new_tok": stats.new_tokens,
            "prompt_tok": stats.prompt_tokens,
            "batch_size": int(cfg.generate.batch_size),
            "max_new_tok": int(cfg.generate.max_new_tokens),
            "answer_budget": OmegaConf.to_container(cfg.generate.answer_budget, resolve=True)
            if cfg.generate.get("answer_budget")
            else None,
            "torch_threads": torch.get_num_threads(),
        },
    }
