"""Tiny end-to-end training runs on CPU: the loss falls, outputs are complete, resume continues the
same run, curriculum order is kept, and the stage writes its manifest."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from safetensors.torch import load_file

from rbiqa.train.outputs import LOG_COLUMNS
from rbiqa.train.run import Job, run_stage, train_arm
from rbiqa.train.trainer import StopAtStep
from tests.unit._generate_fixtures import write_jsonl
from tests.unit._train_fixtures import make_data, rows, run_settings, tiny_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("train_run"))


def job(tmp_path, train, val, **kw):
    vals = {"paraphrase": val, "unseen": val}
    return Job(train, vals, tmp_path / "adapter", tmp_path / "ckpt", fingerprint="f", progress=False, **kw)


def read_log(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_training_on_a_repeated_example_lowers_the_loss(model_dir, tmp_path):
    one = rows(1, 0)[0]
    train = write_jsonl(tmp_path / "train.jsonl", [one | {"row_id": f"r{i}"} for i in range(16)])
    val = write_jsonl(tmp_path / "val.jsonl", [one])
    _, run = run_settings(
        model_dir, "ft_k0", ["train.max_steps=8", "train.eval_steps=4", "train.early_stopping_patience=0"]
    )
    s = train_arm(run, job(tmp_path, train, val))

    assert s["global_step"] == 8 and s["device"] == "cpu"
    assert s["last_train_loss"] < 0.7 * s["first_train_loss"], s
    assert s["final_eval_paraphrase_loss"] < s["first_eval_paraphrase_loss"]
    log = read_log(tmp_path / "adapter" / "trainer_log.csv")
    assert list(log[0]) == list(LOG_COLUMNS)
    assert [int(r["step"]) for r in log] == list(range(1, 9))
    assert all(float(r["tokens_per_s"]) > 0 for r in log)
    assert [r["step"] for r in log if r["eval_paraphrase_loss"]] == ["4", "8"]  # train + eval share a row
    assert all(r["eval_unseen_loss"] for r in log if r["eval_paraphrase_loss"])
    # the shipped weights: the checkpoint with the lowest loss on held-out wordings of trained facts
    assert s["selection"]["rule"] == "val_paraphrase" and s["selection"]["shipped_step"] == 8
    adapter = load_file(tmp_path / "adapter" / "adapter_model.safetensors")
    assert any("lora_B" in k and v.abs().sum() > 0 for k, v in adapter.items())  # B starts at 0: it moved
    cfg = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert cfg["r"] == 16 and cfg["use_rslora"] and len(cfg["target_modules"]) == 7
    summary = json.loads((tmp_path / "adapter" / "train_summary.json").read_text())
    assert summary["trainable_params"] > 0 and summary["peak_rss_bytes"] > 0 and summary["total_tokens"] > 0
    assert not (tmp_path / "ckpt").exists()  # keep_checkpoints=false cleans the scratch dir


def test_resume_continues_the_interrupted_run_exactly(model_dir, tmp_path):
    """Stop after step 2 (checkpointed), resume to 4: same steps, same final weights as one straight run."""
    train, val = make_data(tmp_path)
    over = [
        "train.max_steps=4",
        "train.eval_steps=2",
        "train.keep_checkpoints=true",
        "train.early_stopping_patience=0",
        "train.lora.dropout=0.0",
    ]
    _, run = run_settings(model_dir, "ft_k1", over)

    straight = train_arm(run, job(tmp_path / "a", train, val))
    interrupted = train_arm(run, job(tmp_path / "b", train, val, extra_callbacks=[StopAtStep(2)]))
    assert interrupted["global_step"] == 2
    ckpt = tmp_path / "b" / "ckpt" / "checkpoint-2"
    assert ckpt.exists()
    resumed = train_arm(run, job(tmp_path / "b", train, val, resume_from=str(ckpt)))

    assert resumed["resumed_from"] == str(ckpt) and resumed["global_step"] == 4
    # the sealed checkpoint carries the log so far: the resumed log covers every step
    assert [int(r["step"]) for r in read_log(tmp_path / "b" / "adapter" / "trainer_log.csv")] == [1, 2, 3, 4]
    assert resumed["resumed_at_step"] == 2 and resumed["total_tokens"] == straight["total_tokens"]
    a = load_file(tmp_path / "a" / "adapter" / "adapter_model.safetensors")
    b = load_file(tmp_path / "b" / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=1e-5)
    # the last logged train loss of the resumed run is the straight run's step-4 loss
    assert resumed["last_train_loss"] == pytest.approx(straight["last_train_loss"], rel=1e-5)


def test_curriculum_feeds_rows_easy_to_hard(model_dir, tmp_path):
    from rbiqa.models import load_tokenizer
    from rbiqa.train.data import build_datasets
    from rbiqa.train.model import load_base, resolve_runtime
    from rbiqa.train.trainer import build_trainer

    train = write_jsonl(tmp_path / "train.jsonl", rows(7, 3, difficulty_desc=True))
    val = write_jsonl(tmp_path / "val.jsonl", rows(2, 0))
    _, run = run_settings(model_dir, "ft_curriculum", ["train.per_device_train_batch_size=4"])
    tok = load_tokenizer(model_dir, padding_side="right")
    train_ds, eval_ds, _ = build_datasets(run, tok, train, {"paraphrase": val})
    rt = resolve_runtime(run.train)
    trainer, _ = build_trainer(
        run,
        rt,
        load_base(model_dir, "float32", run.train, rt),
        tok,
        train_ds,
        eval_ds,
        tmp_path / "ckpt",
        progress=False,
    )
    assert trainer.args.train_sampling_strategy == "sequential"  # not grouped by length
    seen = []
    for batch in trainer.get_train_dataloader():  # padded rows on CPU: one example per row
        for ids in batch["input_ids"]:
            text = tok.decode(ids)
            seen.append(next(s for s in range(7) if f"rule {s} say" in text))
    by_source = {r["source_id"]: r["estimated_difficulty"] for r in rows(7, 3, difficulty_desc=True)}
    diffs = [by_source[f"s{s:03d}"] for s in seen]
    assert len(diffs) == 28 and diffs == sorted(diffs)


def test_stage_writes_outputs_and_manifest(model_dir, tmp_path, monkeypatch):
    from rbiqa import paths as P

    monkeypatch.chdir(tmp_path)
    make_data(tmp_path / "data" / "processed")
    cfg, _ = run_settings(model_dir, "ft_k0", ["train.max_steps=2", "train.eval_steps=2"])
    run_stage(cfg)
    out = P.adapter_dir("ft_k0")
    for name in ("adapter_model.safetensors", "adapter_config.json", "trainer_log.csv", "train_summary.json"):
        assert (out / name).exists(), name
    m = json.loads((out / "manifest.json").read_text())
    assert m["stage"] == "train" and m["config"]["arm"]["name"] == "ft_k0"
    assert {
        "data/processed/train.jsonl",
        "data/processed/val.jsonl",
        "data/processed/val_paraphrase.jsonl",
    } <= set(m["inputs"])
    assert m["extra"]["adapter_sha256"] == m["outputs"][(out / "adapter_model.safetensors").as_posix()]
    assert m["extra"]["trainable_params"] > 0


def test_final_selection_ships_the_last_step(model_dir, tmp_path):
    train, val = make_data(tmp_path)
    over = ["train.max_steps=4", "train.eval_steps=2", "train.selection=final"]
    _, run = run_settings(model_dir, "ft_k1", over)
    s = train_arm(run, job(tmp_path, train, val))
    assert s["selection"] == {
        "rule": "final",
        "metric": None,
        "shipped_step": 4,
        "best_metric": s["selection"]["best_metric"],
    }


@pytest.mark.parametrize("arm", ["ft_k0", "ft_k3"])
def test_compute_matched_arms_take_the_same_steps(model_dir, tmp_path, arm):
    """exposures_per_fact: 6 sources x 3 exposures = 18 rows seen, in 1 wording (k=0) or 4 (k=3)."""
    from rbiqa.models import load_tokenizer
    from rbiqa.train.data import build_datasets
    from rbiqa.train.trainer import planned_steps

    train, val = make_data(tmp_path, n_sources=6, k=3)
    over = ["train.max_steps=-1", "train.exposures_per_fact=3", "train.per_device_train_batch_size=2"]
    _, run = run_settings(model_dir, arm, over)
    tok = load_tokenizer(model_dir, padding_side="right")
    train_ds, _, counts = build_datasets(run, tok, train, {"paraphrase": val})
    assert counts["train_sources"] == 6 and counts["num_train_epochs"] * len(train_ds) == pytest.approx(18)
    assert planned_steps(run, len(train_ds), counts["num_train_epochs"]) == 9


def test_nf4_storage_and_its_float32_roundtrip_train_the_same_function(model_dir, tmp_path):
    """The CPU default trains over the NF4 base's values held in float32 (train.cpu_weights=roundtrip);
    bitsandbytes' 4-bit storage (the QLoRA path of the GPU and the paper experiment) must keep working on
    CPU and compute the same losses and updates."""
    train, val = make_data(tmp_path)
    runs = {}
    for weights in ("4bit", "roundtrip"):
        over = [
            "train.quant.load_in_4bit=true",
            f"train.cpu_weights={weights}",
            "train.max_steps=3",
            "train.eval_steps=3",
            "train.lora.dropout=0.0",
        ]
        _, run = run_settings(model_dir, "ft_k1", over)
        s = train_arm(run, job(tmp_path / weights, train, val))
        assert s["runtime"]["weights"] == weights
        runs[weights] = (s, load_file(tmp_path / weights / "adapter" / "adapter_model.safetensors"))
    (s4, a4), (sr, ar) = runs["4bit"], runs["roundtrip"]
    assert s4["first_train_loss"] == pytest.approx(sr["first_train_loss"], rel=1e-4)
    assert s4["last_train_loss"] == pytest.approx(sr["last_train_loss"], rel=1e-3)
    # Adam normalises each update, so a parameter whose gradient is ~0 can step either way on float
    # rounding; compare each adapter's weight update (B @ A) as a whole, not element by element
    for k in (k for k in a4 if "lora_A" in k):
        kb = k.replace("lora_A", "lora_B")
        d4, dr = a4[kb] @ a4[k], ar[kb] @ ar[k]
        rel = ((d4 - dr).norm() / dr.norm()).item()
        assert rel < 0.1, (k, rel)  # measured <= 0.04; unrelated weights give ~1


def test_mixed_in_pools_take_a_share_of_the_same_rows_seen(model_dir, tmp_path):
    """ft_k3_neg's and ft_k3_mix's recipe: a share of the rows trained on come from an extra pool, and
    the rows seen stay exposures_per_fact x sources, so the arm is compute-matched with the one without."""
    from rbiqa.models import load_tokenizer
    from rbiqa.train.data import build_datasets
    from rbiqa.train.trainer import planned_steps

    train, val = make_data(tmp_path, n_sources=6, k=3)
    negs = write_jsonl(
        tmp_path / "abstention_train.jsonl",
        [{"row_id": f"n{i}:v0", "source_id": f"n{i}", "variant_idx": 0, "question": f"What is rule Z{i}?",
          "answer": "I do not know of such a rule."} for i in range(5)],
    )  # fmt: skip
    general = write_jsonl(
        tmp_path / "general_train.jsonl",
        [{"row_id": f"g{i}:v0", "source_id": f"g{i}", "variant_idx": 0, "question": f"What is {i} plus {i}?",
          "answer": f"{2 * i}."} for i in range(20)],
    )  # fmt: skip
    pools = {"abstention": negs, "general": general}
    tok = load_tokenizer(model_dir, padding_side="right")
    seen = {}
    for share in (0.0, 0.25):
        over = ["train.max_steps=-1", "train.exposures_per_fact=3", f"train.mix.abstention={share}"]
        _, run = run_settings(model_dir, "ft_k3", over)
        ds, _, counts = build_datasets(run, tok, train, {"paraphrase": val}, pools)
        seen[share] = counts["num_train_epochs"] * len(ds)
        assert planned_steps(run, len(ds), counts["num_train_epochs"]) == 9
        assert counts["train_sources"] == 6  # abstention examples are not facts
        if share:
            # 24 QA rows + 8 = a quarter: the 5 examples once each, then 3 more drawn with the train seed
            assert counts["mix_rows"] == {"abstention": 8} and len(ds) == 32
            answers = [tok.decode(r["input_ids"]) for r in ds]
            assert sum("I do not know of such a rule." in a for a in answers) == 8
            again = build_datasets(run, tok, train, {"paraphrase": val}, pools)[0]
            assert [r["input_ids"] for r in again] == [r["input_ids"] for r in ds]  # seeded
    assert seen[0.0] == pytest.approx(18) and seen[0.25] == pytest.approx(18)
    # two pools at once: 24 QA rows are 60% of 40, each pool 20%
    over = [
        "train.max_steps=-1",
        "train.exposures_per_fact=3",
        "train.mix.abstention=0.2",
        "train.mix.general=0.2",
    ]
    _, run = run_settings(model_dir, "ft_k3", over)
    ds, _, counts = build_datasets(run, tok, train, {"paraphrase": val}, pools)
    assert counts["mix_rows"] == {"abstention": 8, "general": 8} and len(ds) == 40
    assert counts["num_train_epochs"] * len(ds) == pytest.approx(18)


def test_a_mix_share_without_its_pool_is_an_error(model_dir, tmp_path):
    from rbiqa.io import InputError
    from rbiqa.models import load_tokenizer
    from rbiqa.train.data import build_datasets

    train, val = make_data(tmp_path)
    _, run = run_settings(model_dir, "ft_k3_neg")
    with pytest.raises(InputError, match="abstention"):
        build_datasets(run, load_tokenizer(model_dir, padding_side="right"), train, {"paraphrase": val})
