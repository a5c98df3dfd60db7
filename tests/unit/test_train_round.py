"""The refine arms' extra round (ft_k3_hardneg and its control): which rows it trains on, and that it
continues the starting arm's adapter for the configured steps instead of training a fresh one."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from rbiqa import paths as P
from rbiqa.io import InputError
from rbiqa.schemas import EvalItem
from rbiqa.study import arm_spec, load_study
from rbiqa.train.round import choose_rows, judged_scores
from rbiqa.train.run import Job, train_arm
from tests.unit._generate_fixtures import write_jsonl
from tests.unit._train_fixtures import make_data, rows, run_settings, tiny_model


def item(row: dict) -> EvalItem:
    return EvalItem(
        item_id=row["row_id"],
        source_id=row["source_id"],
        eval_set=P.TRAIN_MINING,
        question=row["question"],
        reference=row["answer"],
        regulation_area=row["regulation_area"],
        category=row["category"],
        difficulty=row["estimated_difficulty"],
    )


def judgment(it: EvalItem, score: int | None) -> dict:
    return {
        "item_id": it.item_id,
        "source_id": it.source_id,
        "eval_set": P.TRAIN_MINING,
        "arm": "ft_k3",
        "score": score,
        "status": "ok" if score is not None else "missing",
        "judge_backend": "reference",
        "judge_model": "m",
    }


ITEMS = [item(r) for r in rows(6, 3)]  # 24 mining rows
# every third row judged wrong, every fifth verdict missing (never counted as wrong)
SCORES = {it.item_id: (None if i % 5 == 4 else 0 if i % 3 == 0 else 1) for i, it in enumerate(ITEMS)}


def test_judged_wrong_takes_exactly_the_rows_scored_0():
    chosen, counts = choose_rows("judged_wrong", ITEMS, SCORES, seed=1)
    assert chosen == [i for i, s in SCORES.items() if s == 0]
    assert counts["judged_wrong"] == counts["round_rows"] == counts["round_rows_judged_wrong"] == len(chosen)
    assert counts["missing_verdicts"] == sum(s is None for s in SCORES.values()) > 0
    assert counts["judged"] + counts["missing_verdicts"] == counts["mining_items"] == 24


def test_random_control_takes_as_many_rows_drawn_by_seed():
    wrong, _ = choose_rows("judged_wrong", ITEMS, SCORES, seed=1)
    a, counts = choose_rows("random", ITEMS, SCORES, seed=1)
    assert len(a) == len(wrong) == counts["round_rows"]
    assert a == choose_rows("random", ITEMS, SCORES, seed=1)[0]  # deterministic
    assert a != choose_rows("random", ITEMS, SCORES, seed=2)[0]  # ... and drawn by the seed
    assert a != wrong and len(set(a)) == len(a)
    assert counts["round_rows_judged_wrong"] == sum(SCORES[i] == 0 for i in a)


def test_nothing_wrong_is_an_error_not_an_empty_round():
    with pytest.raises(InputError, match="nothing to train on"):
        choose_rows("judged_wrong", ITEMS, dict.fromkeys(SCORES, 1), seed=1)


def test_judgments_of_another_mining_set_are_refused(tmp_path):
    path = write_jsonl(tmp_path / "j.jsonl", [judgment(it, 1) for it in ITEMS[:10]])
    with pytest.raises(InputError, match="no judgment for 14 mining item"):
        judged_scores(ITEMS, path)
    full = write_jsonl(tmp_path / "full.jsonl", [judgment(it, SCORES[it.item_id]) for it in ITEMS])
    assert judged_scores(ITEMS, full) == SCORES


def test_arm_files_state_the_round():
    hard, ctrl = arm_spec("ft_k3_hardneg"), arm_spec("ft_k3_hardneg_ctrl")
    assert (hard.kind, hard.adapter_of, hard.round_rows) == ("refine", "ft_k3", "judged_wrong")
    assert (ctrl.kind, ctrl.adapter_of, ctrl.round_rows) == ("refine", "ft_k3", "random")
    assert hard.finetuned and hard.adapter_arm == "ft_k3_hardneg"  # answers with its own adapter
    study = load_study(
        {"study": {"arms": ["ft_k3", "ft_k3_hardneg", "ft_k3_hardneg_ctrl"], "eval_sets": ["test_unseen"]}}
    )
    assert study.mined_arms == ["ft_k3"] and study.ft_arms == ["ft_k3", "ft_k3_hardneg", "ft_k3_hardneg_ctrl"]
    with pytest.raises(InputError, match="not a finetune arm of this study"):
        load_study({"study": {"arms": ["base", "ft_k3_hardneg"], "eval_sets": ["test_unseen"]}})


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("train_round"))


def test_the_round_continues_the_starting_adapter_for_its_steps(model_dir, tmp_path):
    train, val = make_data(tmp_path)
    vals = {"paraphrase": val, "unseen": val}
    _, parent = run_settings(model_dir, "ft_k3", ["train.max_steps=4", "train.eval_steps=2"])
    start = train_arm(
        parent, Job(train, vals, tmp_path / "ft_k3", tmp_path / "c0", fingerprint="p", progress=False)
    )
    assert start["global_step"] == 4

    mining = write_jsonl(tmp_path / "mining.jsonl", [it.model_dump() for it in ITEMS])
    judged = write_jsonl(tmp_path / "judged.jsonl", [judgment(it, SCORES[it.item_id]) for it in ITEMS])

    def refine(arm, lr, out):
        over = ["train.round.steps=3", f"train.round.learning_rate={lr}", "train.eval_steps=3"]
        _, run = run_settings(model_dir, arm, over)
        job = Job(train, vals, tmp_path / out, tmp_path / f"c_{out}", fingerprint=out, progress=False,
                  init_adapter=tmp_path / "ft_k3", mining=(mining, judged))  # fmt: skip
        return run, train_arm(run, job)

    run, s = refine("ft_k3_hardneg", 1e-2, "hard")
    assert run.train.max_steps == 3 and run.train.selection == "final" and run.n_rephrasings == 3
    assert s["global_step"] == 3 and s["started_from_adapter"] == str(tmp_path / "ft_k3")
    rnd = s["data"]["round"]
    assert rnd["rows_picked_by"] == "judged_wrong" and rnd["round_rows"] == s["data"]["train_rows"]
    assert rnd["round_rows"] == sum(v == 0 for v in SCORES.values())
    parent_w = load_file(tmp_path / "ft_k3" / "adapter_model.safetensors")
    moved = load_file(tmp_path / "hard" / "adapter_model.safetensors")
    assert parent_w.keys() == moved.keys()
    assert any(not torch.equal(parent_w[k], moved[k]) for k in parent_w)  # it trained

    # a learning rate that cannot move the weights: the result is the parent adapter, not a fresh one
    # (a fresh LoRA starts with every lora_B at zero)
    _, s0 = refine("ft_k3_hardneg_ctrl", 1e-12, "still")
    still = load_file(tmp_path / "still" / "adapter_model.safetensors")
    assert all(torch.allclose(parent_w[k], still[k], atol=1e-6) for k in parent_w)
    assert any(v.abs().sum() > 0 for k, v in still.items() if "lora_B" in k)
    assert s0["data"]["round"]["rows_picked_by"] == "random"
    assert s0["data"]["round"]["round_rows"] == rnd["round_rows"]  # as many rows as the mined round


def test_mining_set_leaves_out_test_trained_and_caps_by_row_hash():
    from rbiqa.clean.stage import build_train_mining
    from rbiqa.split import source_hash

    train = rows(6, 3)
    asked = [{"item_id": r["row_id"]} for r in train if r["variant_idx"] == 0][:4]  # 4 test_trained items
    full = build_train_mining(train, asked, None, seed=7)
    assert [it["item_id"] for it in full] == [
        r["row_id"] for r in train if r["row_id"] not in {a["item_id"] for a in asked}
    ]
    capped = build_train_mining(train, asked, 5, seed=7)
    want = sorted((it["item_id"] for it in full), key=lambda i: source_hash(7, i))[:5]
    assert sorted(it["item_id"] for it in capped) == sorted(want)
    assert [it["item_id"] for it in capped] == [
        it["item_id"] for it in full if it["item_id"] in want
    ]  # file order
    assert capped != build_train_mining(train, asked, 5, seed=8)
    assert all(it["eval_set"] == P.TRAIN_MINING and it["reference"] for it in capped)


def test_the_rehearsal_check_of_rounds_can_fail():
    from rbiqa.rehearsal import check_rounds

    rnd = {
        "steps": 16,
        "round_rows": 5,
        "judged_wrong": 5,
        "round_rows_judged_wrong": 5,
        "rows_picked_by": "judged_wrong",
    }
    good = {"ft_k3_hardneg": {"round": rnd, "steps": 16},
            "ft_k3_hardneg_ctrl": {"round": rnd | {"rows_picked_by": "random", "round_rows_judged_wrong": 2}, "steps": 16}}  # fmt: skip
    assert check_rounds(good) == []
    assert check_rounds({"x": {"round": None, "steps": None}})  # did not train
    assert check_rounds({"x": {"round": rnd, "steps": 9}})  # stopped short of its round
    assert check_rounds({"x": {"round": rnd | {"round_rows_judged_wrong": 4}, "steps": 16}})  # a right row in
    assert check_rounds({"x": {"round": rnd | {"rows_picked_by": "random", "round_rows": 4}, "steps": 16}})
