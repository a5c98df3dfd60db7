"""Learning curve of the default recipe: accuracy on test_trained (and test_paraphrase) against training.

What sizes the CPU default: how many exposures per fact the main arm needs before it answers its trained
questions. In a scratch copy of the repository it runs the default pipeline's real stages up to clean,
trains the main arm (ft_k3) with a checkpoint after every exposure (selection off: the final weights of
each checkpoint), and for each checkpoint generates and judges test_trained and test_paraphrase with the
default's generate and judge stages; the base model is the zero point. Tokens are the training tokens
seen by that checkpoint (prompt + answer).

    python benchmarks/learning_curve.py [--exposures 8] [--overrides train.learning_rate=5e-4 ...]

Writes benchmarks/results/learning_curve.{json,md}. Takes ~30-40 min on the 2-core box.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COPY = ("conf", "src", "data/sample", "data/models", "data/cache/wheels")
SETS = ("test_trained", "test_paraphrase")


def sh(args: list[str], cwd: Path, log: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(cwd / "src")}
    with open(log, "a") as f:
        f.write(f"\n$ {' '.join(args)}\n")
        f.flush()
        subprocess.run(args, cwd=cwd, env=env, check=True, stdout=f, stderr=subprocess.STDOUT)


def stage(module: str, cwd: Path, log: Path, *overrides: str) -> None:
    sh([sys.executable, "-m", f"rbiqa.{module}", "experiment=default", *overrides], cwd, log)


def score(cwd: Path, arm: str) -> dict:
    out = {}
    for e in SETS:
        js = [json.loads(line) for line in open(cwd / "results" / arm / "judgments" / f"{e}.jsonl")]
        gs = [json.loads(line) for line in open(cwd / "results" / arm / "generations" / f"{e}.jsonl")]
        ok = [j["score"] for j in js if j["score"] is not None]
        nll = [g["reference_nll"] for g in gs if g.get("reference_nll") is not None]
        out[e] = {
            "n": len(ok),
            "correct": int(sum(ok)),
            "accuracy": round(sum(ok) / len(ok), 4) if ok else None,
            "mean_reference_nll": round(sum(nll) / len(nll), 4) if nll else None,
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--exposures", type=int, default=8, help="train this many exposures per fact")
    ap.add_argument("--arm", default="ft_k3")
    ap.add_argument("--points", type=float, nargs="*", help="exposures to evaluate at (default: every one)")
    ap.add_argument("--overrides", nargs="*", default=[], help="extra Hydra overrides for every stage")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "learning_curve"))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rbiqa-curve-"))
    log = work / "curve.log"
    print(f"workspace {work} (log: {log})", flush=True)
    for rel in COPY:
        if (REPO / rel).exists():
            shutil.copytree(REPO / rel, work / rel, symlinks=True)
    ov = list(args.overrides)
    t0 = time.perf_counter()
    for module in ("download", "split", "rephrase", "clean"):
        stage(module, work, log, *ov)
    sets = f"eval_sets=[{','.join(SETS)}]"
    stage("generate", work, log, "arm=base", sets, *ov)
    stage("judge", work, log, "arm=base", sets, *ov)
    points = [{"exposures": 0, "step": 0, "tokens": 0, **score(work, "base")}]
    print(json.dumps(points[-1]), flush=True)

    # one run to the largest exposure, a checkpoint at every exposure: the curve of one training run
    train_overrides = [
        f"arm={args.arm}",
        f"train.exposures_per_fact={args.exposures}",
        "train.selection=final",
        "train.keep_checkpoints=true",
        "train.save_total_limit=1000",
        "train.early_stopping_patience=0",
        *ov,
    ]
    rows = sum(1 for _ in open(work / "data/processed/train.jsonl"))
    sources = len({json.loads(line)["source_id"] for line in open(work / "data/processed/train.jsonl")})
    batch = int(next((o.split("=")[1] for o in ov if o.startswith("train.per_device_train_batch_size=")), 4))
    per_exposure = max(1, round(sources / batch))  # optimizer steps per exposure of every fact
    stage("train", work, log, *train_overrides, f"train.eval_steps={per_exposure}")
    t_train = time.perf_counter()
    summary = json.loads((work / "results" / args.arm / "adapter" / "train_summary.json").read_text())
    ckpts = sorted(
        (work / "results" / args.arm / "checkpoints").glob("checkpoint-*"),
        key=lambda p: int(p.name.split("-")[1]),
    )
    tokens_per_step = summary["total_tokens"] / max(summary["global_step"], 1)
    adapter = work / "results" / args.arm / "adapter"
    for ck in ckpts:
        step = int(ck.name.split("-")[1])
        if args.points and round(step / per_exposure, 2) not in args.points and ck != ckpts[-1]:
            continue
        for name in ("adapter_model.safetensors", "adapter_config.json"):
            shutil.copy2(ck / name, adapter / name)
        stage("generate", work, log, f"arm={args.arm}", sets, *ov)
        stage("judge", work, log, f"arm={args.arm}", sets, *ov)
        points.append(
            {"exposures": round(step / per_exposure, 2), "step": step, "tokens": round(step * tokens_per_step),
             **score(work, args.arm)}
        )  # fmt: skip
        print(json.dumps(points[-1]), flush=True)
    report = {
        "arm": args.arm,
        "overrides": ov,
        "train_rows": rows,
        "train_sources": sources,
        "rephrasings_per_source": summary["data"]["rephrasings_per_source"],
        "steps_per_exposure": per_exposure,
        "train_summary": {
            x: summary.get(x)
            for x in ("global_step", "total_tokens", "train_wall_s", "mean_tokens_per_s", "torch_threads")
        },
        "train_wall_s": round(t_train - t0, 1),
        "total_wall_s": round(time.perf_counter() - t0, 1),
        "points": points,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"# Learning curve: {args.arm}, {sources} trained facts ({rows} rows), overrides {ov or 'none'}",
        "",
        "| exposures | step | training tokens | test_trained | test_paraphrase | loss trained | loss para |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in points:
        a, b = p["test_trained"], p["test_paraphrase"]
        lines.append(
            f"| {p['exposures']} | {p['step']} | {p['tokens']} | {a['correct']}/{a['n']} | {b['correct']}/{b['n']} "
            f"| {a['mean_reference_nll']} | {b['mean_reference_nll']} |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
