"""Small, fast stand-ins for what the generate stage reads: a tiny random llama that uses the real
SmolLM2 tokenizer (a synthetic byte-level BPE tokenizer with the same chat template when the converted
model is absent), a LoRA adapter, eval and training files, and a composed config pointing at them."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import REPO

REAL_MODEL = REPO / "data" / "models" / "smollm2_135m"
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "special_tokens_map.json",
)
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant<|im_end|>\\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
CORPUS = [
    "The cash reserve ratio is the share of deposits a bank keeps with the Reserve Bank of India.",
    "Know your customer rules require periodic updation of customer records every two years.",
    "Gold loans by NBFCs are subject to a loan to value ceiling of 75 percent.",
    "What is the capital of France? Paris. Who regulates payment systems in India? The RBI.",
]


def has_real_model() -> bool:
    return (REAL_MODEL / "config.json").exists() and (REAL_MODEL / "model.safetensors").exists()


def save_tokenizer(dest: Path) -> None:
    """The real SmolLM2 tokenizer when the converted model exists, else a synthetic one."""
    dest.mkdir(parents=True, exist_ok=True)
    if (REAL_MODEL / "tokenizer.json").exists():
        import shutil

        for name in TOKENIZER_FILES:
            if (REAL_MODEL / name).exists():
                shutil.copy2(REAL_MODEL / name, dest / name)
        return
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS * 4, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token=specials[0],
        bos_token=specials[1],
        eos_token=specials[2],
        pad_token=specials[2],
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(dest)


def make_tiny_model(dest: Path, seed: int = 0) -> Path:
    """A 2-layer llama with random weights; initializer_range is raised so logits are far from ties."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    save_tokenizer(dest)
    tok = AutoTokenizer.from_pretrained(dest)
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        initializer_range=0.2,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = LlamaForCausalLM(cfg)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.save_pretrained(dest, safe_serialization=True)
    return dest


def make_adapter(model_dir: Path, dest: Path, seed: int = 1) -> Path:
    """A LoRA adapter with random (non-zero) B, so it really changes the model's outputs."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(model_dir)
    lcfg = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(base, lcfg)
    peft_model.save_pretrained(dest)
    return dest


def eval_rows(eval_set: str, n: int) -> list[dict]:
    questions = [
        "What is the cash reserve ratio?",
        "How often must KYC records be updated for high risk customers under the RBI master direction?",
        "What is the loan to value ceiling for gold loans?",
        "Who regulates payment systems in India?",
        "What is the capital of France?",
        "Can a bank open an account without a PAN?",
        "What does SLR stand for?",
    ]
    return [
        {
            "item_id": f"{eval_set}-{i:03d}",
            "source_id": f"s{i % 5:03d}",
            "eval_set": eval_set,
            "question": questions[i % len(questions)] + ("" if i < len(questions) else f" (case {i})"),
            "reference": "a reference answer",
            "regulation_area": "CRR/SLR",
            "category": "fact-based",
            "difficulty": 3,
        }
        for i in range(n)
    ]


def train_rows(n_sources: int = 8) -> list[dict]:
    rows = []
    for s in range(n_sources):
        for v in range(2):
            rows.append(
                {
                    "row_id": f"s{s:03d}-v{v}",
                    "source_id": f"s{s:03d}",
                    "variant_idx": v,
                    "question": f"Question about topic {s}, variant {v}?",
                    "answer": f"Answer about topic {s}.",
                    "regulation_area": "CRR/SLR",
                    "applicable_to": "banks",
                    "category": "fact-based",
                    "estimated_difficulty": 2,
                }
            )
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def compose_cfg(arm: str, eval_set: str, model_dir: Path, extra: list[str] | None = None):
    """The stage config for a workspace whose cwd holds data/; max_new_tokens kept tiny for speed."""
    from rbiqa.config import compose

    return compose(
        [
            f"arm={arm}",
            f"+eval_set={eval_set}",
            f"model.path={model_dir.as_posix()}",
            "model.name=tiny",
            "model.hf_id=tiny-llama",
            "generate.max_new_tokens=6",
            "generate.batch_size=3",
            "generate.progress=false",
            *(extra or []),
        ]
    )
