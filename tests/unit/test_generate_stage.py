"""The generate stage end to end on a tiny model: outputs, manifest, failures, resume, and bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from rbiqa import paths as P
from rbiqa.generate import stage
from rbiqa.generate.cache import ItemCache, cache_path
from rbiqa.generate.runner import FatalGenerationError, Job, run_jobs
from rbiqa.io import InputError, read_json, read_jsonl
from rbiqa.models import chat_generate, load_causal_lm, load_tokenizer
from rbiqa.schemas import Generation
from tests.unit._generate_fixtures import (
    compose_cfg,
    eval_rows,
    make_adapter,
    make_tiny_model,
    train_rows,
    write_jsonl,
)

EVAL_SET = "test_unseen"
N_ITEMS = 7


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture
def ws(tmp_path, monkeypatch, tiny_model) -> Path:
    """A workspace (cwd) holding the stage's inputs at their rbiqa.paths locations."""
    monkeypatch.chdir(tmp_path)
    write_jsonl(P.eval_set_path(EVAL_SET), eval_rows(EVAL_SET, N_ITEMS))
    write_jsonl(P.CLEAN_TRAIN, train_rows())
    P.stamp("generate", "base").parent.mkdir(parents=True, exist_ok=True)
    P.stamp("generate", "base").write_text("generate: {}\n")
    return tmp_path


@pytest.fixture
def calls(monkeypatch):
    """Counts batches sent to the model (one decoder call each, whichever decoder the config selects)
    and records every prompt sent."""
    log = {"generate": 0, "prompts": []}
    real = stage.LazyModel.__call__

    def counting(self, conversations, limits=None):
        log["generate"] += 1
        log["prompts"].extend(c[-1]["content"] for c in conversations)
        return real(self, conversations, limits)

    monkeypatch.setattr(stage.LazyModel, "__call__", counting)
    return log


def run(arm: str, model: Path, extra: list[str] | None = None) -> list[dict]:
    stage.run(compose_cfg(arm, EVAL_SET, model, extra))
    return read_jsonl(P.generations(arm, EVAL_SET))


def test_base_arm_writes_valid_rows_and_manifest(ws, tiny_model, calls):
    rows = run("base", tiny_model)
    assert [r["item_id"] for r in rows] == [r["item_id"] for r in eval_rows(EVAL_SET, N_ITEMS)]
    for r in rows:
        g = Generation.model_validate(r)
        assert g.arm == "base" and g.error is None and isinstance(g.answer, str)
        assert g.model_id == "tiny-llama" and g.n_new_tokens <= 6
    assert calls["generate"] == 3  # 7 items in batches of 3
    m = read_json(P.manifest_for(P.generations("base", EVAL_SET)))
    assert m["stage"] == "generate"
    assert {P.stamp("generate", "base").as_posix(), P.eval_set_path(EVAL_SET).as_posix()} <= set(m["inputs"])
    assert P.generations("base", EVAL_SET).as_posix() in m["outputs"]
    tp = m["extra"]["throughput"]
    assert tp["answers_per_s"] > 0 and tp["tok_per_s"] > 0
    assert m["extra"]["n_generated"] == N_ITEMS and m["extra"]["model_calls"] == 3
    assert m["config"]["arm"]["name"] == "base"


def test_rerun_with_everything_cached_makes_no_model_call(ws, tiny_model, calls, monkeypatch):
    first = run("base", tiny_model)
    n = calls["generate"]
    loads = []
    monkeypatch.setattr(stage.LazyModel, "load", lambda self: loads.append(1))
    second = run("base", tiny_model)
    assert calls["generate"] == n and loads == []
    assert [r["answer"] for r in second] == [r["answer"] for r in first]
    m = read_json(P.manifest_for(P.generations("base", EVAL_SET)))
    assert m["extra"]["n_cached"] == N_ITEMS and m["extra"]["throughput"]["answers_per_s"] is None


def test_config_change_misses_the_cache(ws, tiny_model, calls):
    run("base", tiny_model)
    n = calls["generate"]
    run("base", tiny_model, ["generate.system_prompt=Answer briefly."])
    assert calls["generate"] == n + 3


def test_resume_after_kill_repeats_no_finished_item(tiny_model, tmp_path):
    model, tok = load_causal_lm(tiny_model), load_tokenizer(tiny_model)
    qs = [f"question number {i}?" for i in range(10)]
    jobs = [Job(f"i{i}", f"k{i}", [{"role": "user", "content": q}]) for i, q in enumerate(qs)]
    seen: list[str] = []

    def gen(convs, limits=None, kill_after=None):
        if kill_after is not None and len(seen) >= kill_after:
            raise KeyboardInterrupt  # like SIGINT/SIGTERM: not an item failure, the run dies
        seen.extend(c[-1]["content"] for c in convs)
        return chat_generate(model, tok, convs, max_new_tokens=4, batch_size=len(convs), progress=False)

    cache = ItemCache(tmp_path / "c.jsonl")
    with pytest.raises(KeyboardInterrupt):
        run_jobs(jobs, lambda c, lim: gen(c, lim, kill_after=6), cache, batch_size=3, progress=False)
    finished = list(seen)
    assert len(finished) == 6
    with open(tmp_path / "c.jsonl", "a") as f:
        f.write('{"key": "k9", "answ')  # a line torn by the kill

    seen.clear()
    rows, stats = run_jobs(jobs, gen, ItemCache(tmp_path / "c.jsonl"), batch_size=3, progress=False)
    assert set(seen) == set(qs) - set(finished)
    assert stats.n_cached == 6 and stats.n_generated == 4 and len(rows) == 10
    seen.clear()
    rows2, stats2 = run_jobs(jobs, gen, ItemCache(tmp_path / "c.jsonl"), batch_size=3, progress=False)
    assert seen == [] and stats2.model_calls == 0 and rows2 == rows


def poison(monkeypatch, marker: str = "capital of France"):
    """Make any batch that contains `marker` raise in either decoder, as a real generation failure would."""
    from rbiqa.prefix_decoding import PrefixGroupedGreedy

    def check(conversations):
        if any(marker in c[-1]["content"] for c in conversations):
            raise RuntimeError("simulated CUDA error: device-side assert")

    real, real_prefix = stage.models.chat_generate, PrefixGroupedGreedy.__call__

    def flaky(model, tok, conversations, **kw):
        check(conversations)
        return real(model, tok, conversations, **kw)

    def flaky_prefix(self, conversations, limits=None):
        check(conversations)
        return real_prefix(self, conversations, limits)

    monkeypatch.setattr(stage.models, "chat_generate", flaky)
    monkeypatch.setattr(PrefixGroupedGreedy, "__call__", flaky_prefix)


def test_failed_item_is_an_error_not_an_answer(ws, tiny_model, monkeypatch):
    clean = run("base", tiny_model, ["generate.batch_size=1"])
    for p in Path("data/cache").rglob("*.jsonl"):
        p.unlink()
    poison(monkeypatch)
    rows = run("base", tiny_model)
    bad = [r for r in rows if "capital of France" in r["question"]]
    assert len(bad) == 1
    assert bad[0]["answer"] is None and "simulated CUDA error" in bad[0]["error"]
    good = [r for r in rows if r is not bad[0]]
    assert all(r["error"] is None and isinstance(r["answer"], str) for r in good)
    # the retried neighbours of the failed item get the answers they get without any failure
    assert [r["answer"] for r in good] == [
        r["answer"] for r in clean if "capital of France" not in r["question"]
    ]
    m = read_json(P.manifest_for(P.generations("base", EVAL_SET)))
    assert m["extra"]["n_failed"] == 1
    cached = {json.loads(line)["item_id"] for line in cache_path("base", EVAL_SET).read_text().splitlines()}
    assert bad[0]["item_id"] not in cached  # failures are retried by the next run


def test_too_many_failures_fail_the_job(ws, tiny_model, monkeypatch):
    poison(monkeypatch, marker="?")
    with pytest.raises(RuntimeError, match="items failed"):
        run("base", tiny_model)
    assert not P.generations("base", EVAL_SET).exists()


def test_finetune_arm_uses_the_adapter(ws, tiny_model, calls):
    make_adapter(tiny_model, P.adapter_dir("ft_k0"))
    base = run("base", tiny_model)
    ft = run("ft_k0", tiny_model)
    assert ft[0]["model_id"].startswith("tiny-llama+lora:ft_k0@")
    assert [r["answer"] for r in ft] != [r["answer"] for r in base]
    m = read_json(P.manifest_for(P.generations("ft_k0", EVAL_SET)))
    assert (P.adapter_dir("ft_k0") / "adapter_model.safetensors").as_posix() in m["inputs"]
    assert m["extra"]["adapter_merged"] is True and m["extra"]["adapter_sha256"]


def test_merged_and_unmerged_adapter_agree(ws, tiny_model):
    make_adapter(tiny_model, P.adapter_dir("ft_k0"))
    merged = run("ft_k0", tiny_model)
    for p in Path("data/cache").rglob("*.jsonl"):
        p.unlink()
    unmerged = run("ft_k0", tiny_model, ["generate.merge_adapter=false"])
    assert [r["answer"] for r in merged] == [r["answer"] for r in unmerged]


def test_fewshot_and_rag_record_their_context(ws, tiny_model, calls):
    run("base_fewshot", tiny_model, ["generate.fewshot.k=3"])
    m = read_json(P.manifest_for(P.generations("base_fewshot", EVAL_SET)))
    items = {r["item_id"]: r for r in eval_rows(EVAL_SET, N_ITEMS)}
    for item_id, ids in m["extra"]["context_ids"].items():
        assert len(ids) == 3 and all(i.endswith("-v0") for i in ids)  # originals only
        assert not any(i.startswith(items[item_id]["source_id"] + "-") for i in ids)
    assert P.CLEAN_TRAIN.as_posix() in m["inputs"]

    run("base_rag", tiny_model, ["generate.rag.top_n=2"])
    m = read_json(P.manifest_for(P.generations("base_rag", EVAL_SET)))
    assert set(m["extra"]["context_ids"]) == set(items)
    assert all(len(v) <= 2 and all(i.endswith("-v0") for i in v) for v in m["extra"]["context_ids"].values())


def test_finetune_rag_arm_answers_with_another_arms_adapter_and_retrieval(ws, tiny_model, calls):
    """ft_k3_rag: ft_k3's adapter (arm.adapter_of), prompted with the passages base_rag retrieves."""
    make_adapter(tiny_model, P.adapter_dir("ft_k3"))
    run("base_rag", tiny_model)
    rag_prompts = list(calls["prompts"])
    ft = run("ft_k3", tiny_model)
    calls["prompts"].clear()
    both = run("ft_k3_rag", tiny_model)
    assert calls["prompts"] == rag_prompts  # the same retrieval prompts as base_rag
    assert all(r["model_id"].startswith("tiny-llama+lora:ft_k3@") for r in both)
    assert [r["answer"] for r in both] != [r["answer"] for r in ft]
    m = read_json(P.manifest_for(P.generations("ft_k3_rag", EVAL_SET)))
    assert (P.adapter_dir("ft_k3") / "adapter_model.safetensors").as_posix() in m["inputs"]
    assert P.CLEAN_TRAIN.as_posix() in m["inputs"] and m["extra"]["arm_kind"] == "finetune_rag"
    assert (
        m["extra"]["adapter_sha256"]
        == read_json(P.manifest_for(P.generations("ft_k3", EVAL_SET)))["extra"]["adapter_sha256"]
    )
    assert set(m["extra"]["context_ids"]) == {r["item_id"] for r in eval_rows(EVAL_SET, N_ITEMS)}


# --- bad input -----------------------------------------------------------------------------------------


def test_missing_eval_file(ws, tiny_model):
    P.eval_set_path(EVAL_SET).unlink()
    with pytest.raises(InputError, match="does not exist.*clean"):
        stage.run(compose_cfg("base", EVAL_SET, tiny_model))


def test_schema_invalid_row(ws, tiny_model):
    rows = eval_rows(EVAL_SET, 3)
    del rows[1]["question"]
    write_jsonl(P.eval_set_path(EVAL_SET), rows)
    with pytest.raises(InputError, match=r"row 2 is not a valid EvalItem: question: Field required"):
        stage.run(compose_cfg("base", EVAL_SET, tiny_model))


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda rows: rows[2].update(eval_set="general"), "row 3 has eval_set='general'"),
        (lambda rows: rows[2].update(item_id=rows[0]["item_id"]), "row 3 repeats item_id"),
        (lambda rows: rows[1].update(surprise=1), "row 2 is not a valid EvalItem: surprise"),
    ],
)
def test_inconsistent_rows(ws, tiny_model, mutate, message):
    rows = eval_rows(EVAL_SET, 3)
    mutate(rows)
    write_jsonl(P.eval_set_path(EVAL_SET), rows)
    with pytest.raises(InputError, match=message):
        stage.run(compose_cfg("base", EVAL_SET, tiny_model))


def test_unknown_arm(ws, tiny_model):
    from hydra.errors import MissingConfigException

    with pytest.raises(MissingConfigException, match="arm/no_such_arm"):
        compose_cfg("no_such_arm", EVAL_SET, tiny_model)
    with pytest.raises(InputError, match="arm.kind='distill'"):
        stage.run(compose_cfg("base", EVAL_SET, tiny_model, ["arm.kind=distill"]))


def test_unknown_or_missing_eval_set(ws, tiny_model):
    from rbiqa.config import compose

    with pytest.raises(InputError, match="unknown eval set 'dev'"):
        stage.run(compose_cfg("base", "dev", tiny_model))
    with pytest.raises(InputError, match=r"pass \+eval_set"):
        stage.run(compose(["arm=base", f"model.path={tiny_model}"]))


def test_finetune_arm_without_adapter(ws, tiny_model):
    with pytest.raises(InputError, match="adapter is missing"):
        stage.run(compose_cfg("ft_k3", EVAL_SET, tiny_model))


def test_prompting_arm_without_training_file(ws, tiny_model):
    P.CLEAN_TRAIN.unlink()
    with pytest.raises(InputError, match="training file"):
        stage.run(compose_cfg("base_rag", EVAL_SET, tiny_model))


def test_unloadable_model_fails_the_job_once(ws, tiny_model, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(FatalGenerationError, match="cannot load the model"):
        stage.run(compose_cfg("base", EVAL_SET, broken))
    assert not P.generations("base", EVAL_SET).exists()


def test_cli_reports_bad_input_and_exits_nonzero(tmp_path):
    """`python -m rbiqa.generate` accepts +eval_set and turns a missing input into a clear message."""
    from tests.conftest import REPO, run_cmd

    proc = run_cmd(
        [sys.executable, "-m", "rbiqa.generate", "arm=base", "+eval_set=general"],
        cwd=tmp_path,
        env={"RBIQA_CONF_DIR": str(REPO / "conf")},
        check=False,
        timeout=300,
    )
    assert proc.returncode != 0
    assert "data/processed/eval/general.jsonl does not exist" in proc.stderr


def test_one_job_answers_every_listed_eval_set_with_one_model_load(ws, tiny_model, calls, monkeypatch):
    """The pipeline's per-arm job: `eval_sets=[...]` (which wins over `+eval_set`) writes one file and
    one manifest per set, each naming only its own eval set as input, and loads the weights once."""
    write_jsonl(P.eval_set_path("unanswerable"), eval_rows("unanswerable", 4))
    loads = []
    real_load = stage.LazyModel.load
    monkeypatch.setattr(stage.LazyModel, "load", lambda self: (loads.append(1), real_load(self))[-1])
    extras = stage.run(compose_cfg("base", EVAL_SET, tiny_model, ["eval_sets=[unanswerable,test_unseen]"]))
    assert list(extras) == ["unanswerable", "test_unseen"] and loads == [1]
    for eval_set, n in (("unanswerable", 4), (EVAL_SET, N_ITEMS)):
        rows = read_jsonl(P.generations("base", eval_set))
        assert len(rows) == n and {r["eval_set"] for r in rows} == {eval_set}
        inputs = set(read_json(P.manifest_for(P.generations("base", eval_set)))["inputs"])
        assert P.eval_set_path(eval_set).as_posix() in inputs
        other = "unanswerable" if eval_set == EVAL_SET else EVAL_SET
        assert P.eval_set_path(other).as_posix() not in inputs
    assert calls["generate"] == 2 + 3  # ceil(4/3) + ceil(7/3) batches


@pytest.mark.parametrize("sets", ["[test_unseen,dev]", "[test_unseen,test_unseen]", "[]"])
def test_a_bad_eval_set_list_fails_before_any_answer(ws, tiny_model, calls, sets):
    with pytest.raises(InputError, match="eval set|eval_sets"):
        stage.run(compose_cfg("base", EVAL_SET, tiny_model, [f"eval_sets={sets}"]))
    assert calls["generate"] == 0 and not P.generations("base", EVAL_SET).exists()


@pytest.mark.parametrize("arm", ["base", "base_fewshot"])
def test_prefix_cached_and_plain_decoding_give_the_same_answers(ws, tiny_model, arm):
    """The default decoder (shared prefix encoded once) against model.generate, through the stage; their
    caches are kept apart (the decoder is part of the key), so the second run really decodes again."""
    plain = run(arm, tiny_model, ["generate.prefix_cache=false"])
    cached = run(arm, tiny_model)
    assert [r["answer"] for r in cached] == [r["answer"] for r in plain]
    assert [r["n_prompt_tokens"] for r in cached] == [r["n_prompt_tokens"] for r in plain]
    fresh = read_json(P.manifest_for(P.generations(arm, EVAL_SET)))["extra"]
    assert fresh["n_generated"] == N_ITEMS and fresh["n_cached"] == 0


# --- teacher-forced reference loss and test_trained exclusions ----------------------------------------


def test_reference_loss_is_recorded_and_cached(ws, tiny_model, monkeypatch):
    """For a set in generate.reference_loss_sets every item with a reference gets its loss, equal to a
    one-item computation by hand, and a rerun serves it from the cache without loading the model; other
    sets carry none."""
    import torch

    # the weights the hand computation below loads; the loss is asked for on this test's set
    unquantized = ["train.quant.load_in_4bit=false", f"generate.reference_loss_sets=[{EVAL_SET}]"]
    rows = run("base", tiny_model, unquantized)
    assert all(r["reference_nll"] > 0 and r["reference_tokens"] > 0 for r in rows)
    model, tok = load_causal_lm(tiny_model), load_tokenizer(tiny_model)
    item = eval_rows(EVAL_SET, N_ITEMS)[2]
    system = compose_cfg("base", EVAL_SET, tiny_model).generate.system_prompt
    msgs = [{"role": "system", "content": system}, {"role": "user", "content": item["question"]}]
    prompt = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    ids = tok(prompt + item["reference"] + tok.eos_token, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
    nll = -sum(float(logp[t - 1, ids[t]]) for t in range(len(p_ids), len(ids))) / (len(ids) - len(p_ids))
    assert rows[2]["reference_tokens"] == len(ids) - len(p_ids)
    assert rows[2]["reference_nll"] == pytest.approx(nll, abs=1e-4)

    loads = []
    monkeypatch.setattr(stage.LazyModel, "load", lambda self: loads.append(1))
    again = run("base", tiny_model, unquantized)
    assert loads == [] and [r["reference_nll"] for r in again] == [r["reference_nll"] for r in rows]
    assert all(r["reference_nll"] is None for r in run("base", tiny_model, unquantized[:1]))


def test_reference_loss_does_not_depend_on_the_batch(tiny_model):
    from rbiqa.generate.reference_loss import reference_nll

    model, tok = load_causal_lm(tiny_model), load_tokenizer(tiny_model)
    convs = [[{"role": "user", "content": r["question"]}] for r in eval_rows(EVAL_SET, 5)]
    refs = ["Short.", "A much longer reference answer with many more tokens in it.", "x", "Two words", "Ok."]
    one = [reference_nll(model, tok, [c], [r])[0] for c, r in zip(convs, refs, strict=True)]
    batched = reference_nll(model, tok, convs, refs, batch_size=5)
    for a, b in zip(one, batched, strict=True):
        assert a["reference_tokens"] == b["reference_tokens"]
        assert a["reference_nll"] == pytest.approx(b["reference_nll"], abs=1e-4)


def test_fewshot_never_shows_a_test_trained_item(ws, tiny_model):
    rows = train_rows()
    trained = {"s000", "s002", "s004", "s006"}
    write_jsonl(P.CLEAN_TRAIN, [r | {"trained_eval": r["source_id"] in trained} for r in rows])
    run("base_fewshot", tiny_model, ["generate.fewshot.k=3"])
    m = read_json(P.manifest_for(P.generations("base_fewshot", EVAL_SET)))
    used = {i.rsplit("-", 1)[0] for ids in m["extra"]["context_ids"].values() for i in ids}
    assert used and used.isdisjoint(trained)
    assert m["extra"]["prompt_context"]["excluded_test_trained"] == 4


def test_reference_loss_with_a_cached_prefix_equals_the_full_prompt(tiny_model):
    from rbiqa.generate.reference_loss import reference_nll

    model, tok = load_causal_lm(tiny_model), load_tokenizer(tiny_model)
    system = {"role": "system", "content": "You answer questions about RBI rules briefly."}
    convs = [[system, {"role": "user", "content": r["question"]}] for r in eval_rows(EVAL_SET, 6)]
    refs = [f"Reference answer number {i}, {'with more words ' * i}done." for i in range(6)]
    cached = reference_nll(model, tok, convs, refs, batch_size=4, prefix_cache=True)
    full = reference_nll(model, tok, convs, refs, batch_size=4, prefix_cache=False)
    for a, b in zip(cached, full, strict=True):
        assert a["reference_tokens"] == b["reference_tokens"] > 0
        assert a["reference_nll"] == pytest.approx(b["reference_nll"], abs=1e-4)


def test_answer_budgets_cut_the_same_greedy_answer(ws, tiny_model):
    """A budget from the reference length stops each answer early; under greedy decoding the cut answer is
    the start of the uncut one, with either decoder, and the budget is part of the cache key."""
    full = run("base", tiny_model, ["generate.answer_budget=null"])
    tight = ["generate.answer_budget.factor=0.5", "generate.answer_budget.margin=1"]
    cut = run("base", tiny_model, tight)
    plain = run("base", tiny_model, [*tight, "generate.prefix_cache=false"])
    tok = load_tokenizer(tiny_model)
    budget = min(6, -(-len(tok("a reference answer", add_special_tokens=False)["input_ids"]) // 2) + 1)
    assert budget < 6  # the fixture's cap: the budget really is tighter
    for f, c, p in zip(full, cut, plain, strict=True):
        assert c["n_new_tokens"] <= budget and c["answer"] == p["answer"]
        assert f["answer"].startswith(c["answer"]) or not c["answer"]
    m = read_json(P.manifest_for(P.generations("base", EVAL_SET)))
    assert m["extra"]["throughput"]["answer_budget"]["factor"] == 0.5


def test_unanswerable_items_get_the_no_reference_budget(tiny_model):
    from rbiqa.schemas import EvalItem

    cfg = compose_cfg("base", EVAL_SET, tiny_model, ["generate.max_new_tokens=50"])
    tok = load_tokenizer(tiny_model)
    items = [EvalItem.model_validate(r) for r in eval_rows(EVAL_SET, 2)]
    items.append(items[0].model_copy(update={"reference": None, "eval_set": "unanswerable"}))
    items.append(items[0].model_copy(update={"reference": "word " * 200}))
    budgets = stage.answer_budgets(cfg.generate, items, tok)
    n_ref = len(tok("a reference answer", add_special_tokens=False)["input_ids"])
    assert budgets == [-(-3 * n_ref // 2) + 16] * 2 + [50, 50]  # no_reference 64 and long ones capped at 50
    assert (
        stage.answer_budgets(
            compose_cfg("base", EVAL_SET, tiny_model, ["generate.answer_budget=null"]).generate, items, tok
        )
        == [None] * 4
    )
