"""A synthetic, schema-valid results tree, so stats, figures and the paper can be built and tested
without running the model stages (and the reviewer path can be timed on a clean machine).

Scores come from a seeded latent-ease model: each source question has an ease, each arm an effect per
eval set, so arms are positively correlated item by item as real arms are, and fine-tuning helps more
on paraphrases of trained questions than on unseen ones. About 2% of judgments are "missing".
Every file is written in the producing stage's documented shape (docs/ARCHITECTURE.md); manifests are
built with rbiqa.manifest so their layout is the real one.

    python -m rbiqa.report.sample_results --root /tmp/demo [--arms base ft_k0 ft_k3] [--n 120]
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rbiqa import paths as P
from rbiqa.io import sha256_path, write_json, write_jsonl
from rbiqa.manifest import STAGE_ORDER, build_manifest, scrub
from rbiqa.schemas import EvalItem, Judgment

DEFAULT_ARMS = ("base", "base_fewshot", "base_rag", "ft_k0", "ft_k3")
PAPER_ARMS = (
    "base",
    "base_fewshot",
    "base_rag",
    "ft_k0",
    "ft_k1",
    "ft_k2",
    "ft_k3",
    "ft_r8",
    "ft_r32",
    "ft_lr5e-5",
    "ft_lr1e-4",
    "ft_lr5e-4",
    "ft_ep0p5",
    "ft_ep1p5",
    "ft_ep2",
    "ft_curriculum",
    "ft_k3_s2",
    "ft_k3_s3",
)
AREAS = (
    ("Know Your Customer", 0.22),
    ("Foreign Exchange Management", 0.18),
    ("Prudential Norms", 0.15),
    ("Payment and Settlement Systems", 0.12),
    ("Priority Sector Lending", 0.10),
    ("Anti-Money Laundering", 0.09),
    ("Digital Lending", 0.06),
    ("Currency Management", 0.04),
    ("IFSC Banking", 0.02),
    ("Lending Conduct", 0.02),
)
# logit effect of each arm, per eval set (para, unseen, unanswerable, general)
_BASELINES = {
    "base": (-2.0, -2.0, 0.4, 0.5),
    "base_fewshot": (-1.7, -1.7, 0.5, 0.5),
    "base_rag": (-0.9, -1.2, 0.7, 0.45),
}
JUDGE_MODEL = "rbiqa-reference-judge-v1"


def arm_effect(arm: str, eval_set: str) -> float:
    col = P.EVAL_SETS.index(eval_set)
    if arm in _BASELINES:
        return _BASELINES[arm][col]
    m = re.match(r"ft_k(\d)", arm)
    k = int(m.group(1)) if m else 3
    para = -0.6 + 0.3 * k
    unseen = -1.7 + 0.08 * k
    unans = 0.1 - 0.05 * k
    general = 0.35
    shift = {
        "ft_r8": -0.1,
        "ft_r32": 0.05,
        "ft_lr5e-5": -0.5,
        "ft_lr5e-4": -0.2,
        "ft_ep0p5": -0.4,
        "ft_ep2": 0.1,
    }
    s = shift.get(arm, 0.0)
    if re.search(r"_s\d+$", arm):
        s += 0.08 * (int(arm.rsplit("_s", 1)[1]) - 2)
    return (para + s, unseen + s / 2, unans, general)[col]


def _eval_items(rng: np.random.Generator, eval_set: str, n_sources: int) -> list[dict]:
    names = [a for a, _ in AREAS]
    probs = np.array([p for _, p in AREAS]) / sum(p for _, p in AREAS)
    rows = []
    for s in range(n_sources):
        source_id = f"{eval_set[:4]}-src{s:04d}"
        area = names[rng.choice(len(names), p=probs)] if eval_set != "general" else "General knowledge"
        # test_paraphrase gets 1-2 phrasings per source, so the cluster bootstrap has clusters to respect
        n_phr = 1 + int(rng.random() < 0.35) if eval_set == "test_paraphrase" else 1
        for v in range(n_phr):
            item = EvalItem(
                item_id=f"{source_id}-v{v}",
                source_id=source_id,
                eval_set=eval_set,
                question=f"Synthetic question {s} ({v}) about {area}?",
                reference=None if eval_set == "unanswerable" else f"Synthetic reference answer {s}.",
                regulation_area=area,
                category="reasoning" if rng.random() < 0.15 else "fact-based",
                difficulty=int(rng.integers(1, 8)) if eval_set != "general" else None,
            )
            rows.append(item.model_dump())
    return rows


@functools.cache
def _template() -> dict:
    """One real manifest, reused: build_manifest reads every library's metadata (~0.15 s a call)."""
    return build_manifest("judge", {}, [], [])


def _manifest(path: Path, root: Path, stage: str, config: dict, outputs: Sequence[Path], extra=None) -> None:
    m = dict(_template())
    m.update(
        stage=stage, stage_order=STAGE_ORDER[stage], config=scrub(config), inputs={}, extra=dict(extra or {})
    )
    m["outputs"] = {Path(o).as_posix(): sha256_path(root / o) for o in outputs}
    write_json(root / path, m)


def _trainer_log(rng: np.random.Generator, path: Path, arm: str, steps: int = 120) -> None:
    lr0 = {"ft_lr5e-5": 5e-5, "ft_lr1e-4": 1e-4, "ft_lr5e-4": 5e-4}.get(arm, 2e-4)
    floor = 0.6 + rng.random() * 0.2
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["step", "epoch", "train_loss", "eval_loss", "learning_rate", "tokens_per_s"])
        for step in range(1, steps + 1):
            loss = floor + 1.8 * np.exp(-step / 25) + rng.normal(0, 0.04)
            ev = f"{floor + 0.15 + 1.6 * np.exp(-step / 30):.4f}" if step % 20 == 0 else ""
            w.writerow(
                [
                    step,
                    f"{step / steps * 2:.3f}",
                    f"{loss:.4f}",
                    ev,
                    f"{lr0 * (1 - step / steps):.3e}",
                    f"{900 + rng.normal(0, 30):.1f}",
                ]
            )


def _hparams(arm: str) -> dict:
    r = {"ft_r8": 8, "ft_r32": 32}.get(arm, 16)
    lr = {"ft_lr5e-5": 5e-5, "ft_lr1e-4": 1e-4, "ft_lr5e-4": 5e-4}.get(arm, 2e-4)
    ep = {"ft_ep0p5": 0.5, "ft_ep1p5": 1.5, "ft_ep2": 2.0}.get(arm, 1.0)
    return {
        "lora": {"r": r, "alpha": 2 * r},
        "learning_rate": lr,
        "num_train_epochs": ep,
        "curriculum": arm == "ft_curriculum",
    }


def write_sample_results(
    root: Path,
    arms: Sequence[str] = DEFAULT_ARMS,
    eval_sets: Sequence[str] = P.EVAL_SETS,
    n_sources: int = 120,
    seed: int = 1234,
    missing_rate: float = 0.02,
    with_agreement: bool = True,
) -> dict:
    """Write the whole tree under `root`; returns {"arms", "eval_sets", "n_items": {set: n}}."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    n_items = {}
    for e in eval_sets:
        items = _eval_items(rng, e, n_sources)
        write_jsonl(root / P.eval_set_path(e), items)
        n_items[e] = len(items)
        ease = {s: rng.normal(0, 1.3) for s in {i["source_id"] for i in items}}
        for arm in arms:
            rows = []
            for it in items:
                p = 1 / (1 + np.exp(-(ease[it["source_id"]] + arm_effect(arm, e) + rng.normal(0, 0.3))))
                missing = rng.random() < missing_rate
                j = Judgment(
                    item_id=it["item_id"],
                    source_id=it["source_id"],
                    eval_set=e,
                    arm=arm,
                    score=None if missing else int(rng.random() < p),
                    status="missing" if missing else "ok",
                    error="judge timeout" if missing else None,
                    judge_backend="reference",
                    judge_model=JUDGE_MODEL,
                    prompt_hash="0" * 16,
                )
                rows.append(j.model_dump())
            out = root / P.judgments(arm, e)
            write_jsonl(out, rows)
            _manifest(
                P.manifest_for(P.judgments(arm, e)),
                root,
                "judge",
                {"judge": {"name": "reference", "model": JUDGE_MODEL}, "arm": {"name": arm}},
                [P.judgments(arm, e)],
            )
    for arm in arms:
        if not arm.startswith("ft_"):
            continue
        ad = root / P.adapter_dir(arm)
        ad.mkdir(parents=True, exist_ok=True)
        (ad / "adapter_model.safetensors").write_bytes(rng.bytes(256))
        write_json(ad / "adapter_config.json", {"r": _hparams(arm)["lora"]["r"]})
        _trainer_log(rng, ad / "trainer_log.csv", arm)
        write_json(
            ad / "train_summary.json",
            {
                "train_runtime_s": round(float(rng.uniform(50, 90)), 1),
                "n_train_rows": 400,
                "global_step": 120,
            },
        )
        k = int(m.group(1)) if (m := re.match(r"ft_k(\d)", arm)) else 3
        outs = [
            P.adapter_dir(arm) / n
            for n in ("adapter_model.safetensors", "adapter_config.json", "trainer_log.csv")
        ]
        _manifest(
            P.adapter_dir(arm) / "manifest.json",
            root,
            "train",
            {
                "seed": seed,
                "arm": {"name": arm, "kind": "finetune", "n_rephrasings": k},
                "train": _hparams(arm),
            },
            outs,
        )
    _data_lineage(root, seed)
    if with_agreement:
        write_json(
            root / P.JUDGE_AGREEMENT,
            # the shape rbiqa.judge.agreement writes
            {
                "reference_vs_labels": {
                    "kappa": 0.81,
                    "kappa_ci": [0.76, 0.86],
                    "accuracy": 0.93,
                    "n": 1048,
                    "confusion": {
                        "labels": [0, 1],
                        "rows": "reference rater",
                        "cols": "other",
                        "matrix": [[690, 22], [51, 285]],
                    },
                },
                "judge_pairs": [],
                "human": None,
                "raters_found": [JUDGE_MODEL],
            },
        )
    return {"arms": list(arms), "eval_sets": list(eval_sets), "n_items": n_items}


def _data_lineage(root: Path, seed: int) -> None:
    raw = root / P.RAW_QA
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text(json.dumps({"id": "x", "question": "synthetic"}) + "\n", encoding="utf-8")
    _manifest(
        P.RAW_MANIFEST,
        root,
        "download_data",
        {"data": {"name": "sample", "source": "local"}, "seed": seed},
        [P.RAW_QA],
    )
    write_json(
        root / P.SPLIT_REPORT,
        {
            "n_sources": 800,
            "n_train": 560,
            "n_val": 80,
            "n_test_unseen": 120,
            "n_test_paraphrase_sources": 84,
        },
    )
    _manifest(P.SPLIT_MANIFEST, root, "split", {"split": {"val_frac": 0.1}, "seed": seed}, [P.SPLIT_REPORT])
    write_json(root / P.REPHRASE_REPORT, {"n_generated": 1700, "n_rejected": 40})
    _manifest(
        P.REPHRASE_MANIFEST,
        root,
        "rephrase",
        {"rephrase": {"name": "hf_local", "backend": "hf_local"}, "seed": seed},
        [P.REPHRASE_REPORT],
        extra={"prompt_hash": "3f2a9c1b7d4e5f60", "backend": "hf_local"},
    )
    write_json(
        root / P.CLEAN_REPORT,
        {"n_in": 2260, "n_out": 2190, "removed": {"near_duplicate": 52, "pii": 3, "contaminated": 15}},
    )
    write_json(root / P.CONTAMINATION, {"n_flagged": 15, "threshold": 0.8})
    _manifest(P.CLEAN_MANIFEST, root, "clean", {"clean": {"name": "default"}, "seed": seed}, [P.CLEAN_REPORT])


def prepare_report_tree(
    root: Path,
    arms: Sequence[str] = DEFAULT_ARMS,
    overrides: Sequence[str] = (),
    with_agreement: bool = True,
    n_sources: int = 120,
) -> dict:
    """Sample tree + a copy of paper/ + the stats and figures stages run in-process under `root`.

    What the report tests and the reviewer-path timing start from: everything the `report` rule needs.
    """
    import contextlib
    import shutil

    from rbiqa.config import compose
    from rbiqa.figures.stage import run as run_figures
    from rbiqa.stats.stage import run as run_stats

    root = Path(root)
    info = write_sample_results(root, arms, n_sources=n_sources, with_agreement=with_agreement)
    repo_paper = Path(__file__).resolve().parents[3] / "paper"
    if not (repo_paper / "main.tex").exists():
        raise FileNotFoundError(
            f"{repo_paper}/main.tex not found: needs a source checkout (pip install -e .)"
        )
    shutil.copytree(
        repo_paper,
        root / "paper",
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("build", "report.pdf", "numbers.tex", "lineage.tex"),
    )
    scope = [f"stats.arms=[{','.join(arms)}]", f"stats.eval_sets=[{','.join(P.EVAL_SETS)}]"]
    with contextlib.chdir(root):
        cfg = compose([*scope, *overrides])
        run_stats(cfg)
        run_figures(cfg)
    return info


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--arms", nargs="+", default=list(DEFAULT_ARMS))
    ap.add_argument("--paper-arms", action="store_true", help="use every arm of the paper experiment")
    ap.add_argument("--n", type=int, default=120, help="source questions per eval set")
    ap.add_argument("--seed", type=int, default=1234)
    a = ap.parse_args(argv)
    info = write_sample_results(a.root, PAPER_ARMS if a.paper_arms else a.arms, n_sources=a.n, seed=a.seed)
    print(json.dumps(info))


if __name__ == "__main__":
    main()
