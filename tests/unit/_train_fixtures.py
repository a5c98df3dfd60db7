"""Fast stand-ins for the train stage: training/val rows, a tiny random llama with the real SmolLM2
tokenizer (tests/unit/_generate_fixtures.py), and RunSettings pointing at them."""

from __future__ import annotations

from pathlib import Path

from tests.unit._generate_fixtures import make_tiny_model, write_jsonl

ANSWERS = [
    "Banks must keep 4 percent of deposits as CRR.",
    "KYC records of high risk customers are updated every two years.",
    "The loan to value ceiling for gold loans is 75 percent.",
    "Payment systems are regulated by the RBI.",
]


def rows(n_sources: int = 6, k: int = 3, difficulty_desc: bool = False) -> list[dict]:
    out = []
    for s in range(n_sources):
        for v in range(k + 1):
            out.append(
                {
                    "row_id": f"s{s:03d}-v{v}",
                    "source_id": f"s{s:03d}",
                    "variant_idx": v,
                    "question": f"What does rule {s} say{'' if v == 0 else f' (phrasing {v})'}?",
                    "answer": ANSWERS[s % len(ANSWERS)],
                    "regulation_area": "CRR/SLR",
                    "applicable_to": "banks",
                    "category": "fact-based",
                    "estimated_difficulty": (7 - s % 7) if difficulty_desc else 1 + s % 7,
                }
            )
    return out


def make_data(tmp: Path, n_sources: int = 6, k: int = 3) -> tuple[Path, Path]:
    """train.jsonl, val.jsonl (unseen facts) and val_paraphrase.jsonl (another wording of trained ones);
    returns (train, val_paraphrase)."""
    train = write_jsonl(tmp / "train.jsonl", rows(n_sources, k))
    write_jsonl(tmp / "val.jsonl", [r | {"source_id": "v" + r["source_id"]} for r in rows(3, 0)])
    para = [r | {"row_id": r["source_id"] + ":valpara", "question": r["question"].replace("say", "state")}
            for r in rows(2, 0)]  # fmt: skip
    return train, write_jsonl(tmp / "val_paraphrase.jsonl", para)


def tiny_model(tmp: Path) -> Path:
    return make_tiny_model(tmp / "tiny_model")


def run_settings(model_dir: Path, arm: str = "ft_k3", overrides: list[str] | None = None, check_model=True):
    """Composed config for `arm`, pointing at model_dir, with CPU-test-sized training."""
    from rbiqa.config import compose
    from rbiqa.train.settings import build_settings

    cfg = compose(
        [
            f"arm={arm}",
            f"model.path={model_dir.as_posix()}",
            "model.name=tiny",
            "model.dtype=float32",
            "train.max_steps=6",
            "train.eval_steps=3",
            "train.logging_steps=1",
            "train.per_device_train_batch_size=2",
            "train.per_device_eval_batch_size=4",
            "train.quant.load_in_4bit=false",
            "train.learning_rate=1e-2",
            "train.warmup_ratio=0.0",
            "train.threads=1",
            # the synthetic byte-level tokenizer (used when the real model is not fetched, as in CI) spends
            # ~2x the real one's tokens on the system prompt: 256 would truncate the answers
            "train.max_seq_len=1024",
            *(overrides or []),
        ]
    )
    return cfg, build_settings(cfg, check_model=check_model)
