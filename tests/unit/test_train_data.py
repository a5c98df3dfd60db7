"""What the model is trained on: the right rows, the loss on exactly the answer + end-of-turn, and
padding-free batches in which examples cannot see each other."""

from __future__ import annotations

import pytest
import torch

from rbiqa.io import InputError
from rbiqa.train.data import (
    TrainRow,
    curriculum_order,
    eval_subset,
    load_rows,
    select_variants,
    to_prompt_completion,
    tokenize,
)
from tests.unit._train_fixtures import ANSWERS, make_data, rows, run_settings, tiny_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("train_data"))


@pytest.fixture(scope="module")
def tok(model_dir):
    from rbiqa.models import load_tokenizer

    return load_tokenizer(model_dir, padding_side="right")


def as_rows(raw):
    return [TrainRow.model_validate(r) for r in raw]


def test_arm_k_selects_originals_plus_k_rephrasings():
    data = as_rows(rows(n_sources=4, k=3))
    for k in range(4):
        chosen = select_variants(data, k)
        assert len(chosen) == 4 * (k + 1)
        assert {r.variant_idx for r in chosen} == set(range(k + 1))


def test_bad_rows_are_reported_with_file_and_row(tmp_path):
    p = tmp_path / "train.jsonl"
    p.write_text('{"row_id": "a", "source_id": "s", "variant_idx": -1, "question": "q", "answer": "a"}\n')
    with pytest.raises(InputError, match=r"row 1 .*variant_idx"):
        load_rows(p)


def test_curriculum_is_easy_to_hard_and_stable():
    data = as_rows(rows(n_sources=7, k=1, difficulty_desc=True))
    ordered = curriculum_order(data)
    diffs = [r.estimated_difficulty for r in ordered]
    assert diffs == sorted(diffs) and diffs != [r.estimated_difficulty for r in data]
    # ties keep file order: both variants of a source stay together, original first
    assert [r.variant_idx for r in ordered[:2]] == [0, 1]


def test_eval_subset_is_originals_only_and_seeded():
    data = as_rows(rows(n_sources=10, k=2))
    a, b = eval_subset(data, 4, seed=1), eval_subset(data, 4, seed=1)
    assert [r.row_id for r in a] == [r.row_id for r in b] and len(a) == 4
    assert all(r.variant_idx == 0 for r in a)
    assert [r.row_id for r in eval_subset(data, 4, seed=2)] != [r.row_id for r in a]


def test_truncation_keeps_the_start_and_drops_rows_without_answer_tokens(tok):
    pairs = to_prompt_completion(as_rows(rows(2, 0)), tok, "System prompt.")
    full, _ = tokenize(pairs, tok, 10_000)
    n_prompt = full[0]["completion_mask"].index(1)
    cut, n_cut = tokenize(pairs, tok, n_prompt + 3)
    assert n_cut == 2 and cut[0]["input_ids"] == full[0]["input_ids"][: n_prompt + 3]
    assert sum(cut[0]["completion_mask"]) == 3
    none, _ = tokenize(pairs, tok, n_prompt)  # the prompt alone fills max_len: nothing to learn
    assert none == []


def collated_batch(model_dir, tmp_path, overrides=("train.padding_free.cpu=true",)):
    """One training batch exactly as the SFTTrainer's dataloader yields it (padding-free unless the
    overrides say otherwise: the CUDA layout, where examples share one flattened row)."""
    from rbiqa.models import load_tokenizer
    from rbiqa.train.data import build_datasets
    from rbiqa.train.model import load_base, resolve_runtime
    from rbiqa.train.trainer import build_trainer

    train, val = make_data(tmp_path)
    _, run = run_settings(model_dir, "ft_k0", ["train.per_device_train_batch_size=3", *overrides])
    tok = load_tokenizer(model_dir, padding_side="right")
    train_ds, eval_ds, _ = build_datasets(run, tok, train, {"paraphrase": val})
    rt = resolve_runtime(run.train)
    model = load_base(model_dir, "float32", run.train, rt)
    trainer, _ = build_trainer(run, rt, model, tok, train_ds, eval_ds, tmp_path / "ckpt", progress=False)
    batch = next(iter(trainer.get_train_dataloader()))
    batch["_trainer"] = trainer
    return tok, batch, run


def test_only_the_answer_and_end_of_turn_are_trained(model_dir, tmp_path):
    tok, batch, run = collated_batch(model_dir, tmp_path)
    batch.pop("_trainer")
    ids, labels, pos = batch["input_ids"][0], batch["labels"][0], batch["position_ids"][0]
    assert batch["input_ids"].shape[0] == 1 and "attention_mask" not in batch  # padding-free: one flat row
    starts = (pos == 0).nonzero().flatten().tolist() + [len(pos)]
    assert len(starts) - 1 == 3, "three examples flattened into the row"
    for a, b in zip(starts[:-1], starts[1:], strict=True):
        seg_ids, seg_labels = ids[a:b], labels[a:b]
        trained = tok.decode(seg_labels[seg_labels != -100])
        text = tok.decode(seg_ids)
        answer = next(x for x in ANSWERS if x in text)
        assert trained == answer + tok.eos_token, trained
        # and everything before the answer (system, question, the assistant header) is masked
        first = int((seg_labels != -100).nonzero()[0])
        assert tok.decode(seg_ids[:first]).endswith("<|im_start|>assistant\n")
        assert run.system_prompt.split()[0] in tok.decode(seg_ids[:first])


def test_padded_batches_train_only_the_answer_and_group_rows_by_length(model_dir, tmp_path):
    """The CPU layout: right-padded rows, sampled by length; labels are the answer + end-of-turn only, and
    the completion head's loss equals the model's own loss on the same batch."""
    tok, batch, run = collated_batch(model_dir, tmp_path, ["train.padding_free.cpu=false"])
    trainer = batch.pop("_trainer")
    assert trainer.args.train_sampling_strategy == "group_by_length"
    assert batch["input_ids"].shape[0] == 3 and "attention_mask" in batch
    for labels in batch["labels"]:
        trained = tok.decode(labels[labels != -100])
        assert trained in {a + tok.eos_token for a in ANSWERS}, trained
    model = trainer.model.eval()
    with torch.no_grad():
        trainer.loss_head = "completion"
        ours = float(trainer.compute_loss(model, dict(batch)))
        trainer.loss_head = "full"
        full = float(trainer.compute_loss(model, dict(batch)))
    assert ours == pytest.approx(full, rel=1e-4)


@pytest.mark.parametrize("head", ["full", "fused", "completion"])
def test_packed_examples_do_not_attend_to_each_other(model_dir, tmp_path, head):
    """The trainer's loss on a padding-free row equals the token-weighted loss of each example alone.

    This goes through the trainer's real path (collator, compute_loss with each LM head, sdpa), where
    transformers turns the restarting position_ids into a block-diagonal mask. That only happens without
    a KV cache (TRL passes use_cache=False). Negative control: position_ids that do not restart make the
    examples one sequence, and the loss changes, so this comparison does detect cross-example attention."""
    _, batch, _ = collated_batch(
        model_dir,
        tmp_path,
        ["train.lora.dropout=0.0", f"train.loss_head.cpu={head}", "train.padding_free.cpu=true"],
    )
    trainer = batch.pop("_trainer")
    model = trainer.model.eval()
    with torch.no_grad():
        flat_loss = float(trainer.compute_loss(model, dict(batch)))
        ids, labels, pos = batch["input_ids"][0], batch["labels"][0], batch["position_ids"][0]
        starts = (pos == 0).nonzero().flatten().tolist() + [len(pos)]
        total, n_tokens = 0.0, 0
        for a, b in zip(starts[:-1], starts[1:], strict=True):
            seg_labels = labels[a:b]
            n = int((seg_labels[1:] != -100).sum())
            out = model(input_ids=ids[None, a:b], labels=seg_labels[None], use_cache=False)
            total, n_tokens = total + float(out.loss) * n, n_tokens + n
        leaky = dict(batch, position_ids=torch.arange(len(pos))[None])
        leaky_loss = float(trainer.compute_loss(model, leaky))
    assert flat_loss == pytest.approx(total / n_tokens, rel=1e-4)
    assert abs(leaky_loss - flat_loss) > 1e-3
