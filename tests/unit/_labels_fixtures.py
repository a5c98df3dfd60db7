"""A tiny judged run for the human-label loop: eval sets, generations and judgments of two arms, written
under the current directory, with a known 'true' label per answer that a simulated labeller can read off
the answer text (GOOD / BAD), and judge verdicts whose agreement with it is known by hand.

Per eval set, (human label, reference judge) over both arms (cells are counts):
  test_unseen  (12 answers): both 1: 5, both 0: 4, judge 1 human 0: 1, judge 0 human 1: 2 -> kappa 0.5
  unanswerable (12 answers): both 1: 6, both 0: 4, judge 0 human 1: 2                     -> kappa 2/3
  general      (8 answers):  both 1: 4, both 0: 4                                         -> kappa 1
  pooled answerable (test_unseen + general, 20): 9, 8, 1, 2                               -> kappa 0.7
(kappa = (p_o - p_e) / (1 - p_e); each line has p_e = 0.5.)
"""

from __future__ import annotations

import json
from pathlib import Path

from rbiqa import paths as P
from rbiqa.schemas import EvalItem, Generation, Judgment

ARMS = ("base", "ft_k3")
SETS = ("test_unseen", "unanswerable", "general")
N_ITEMS = {"test_unseen": 6, "unanswerable": 6, "general": 4}
REF_MODEL = "ref-model"
# (human, judge) per answer, in order arm base items 0..n-1, then arm ft_k3 items 0..n-1
PAIRS = {
    "test_unseen": [(1, 1)] * 5 + [(0, 0)] * 4 + [(0, 1)] + [(1, 0)] * 2,
    "unanswerable": [(1, 1)] * 6 + [(0, 0)] * 4 + [(1, 0)] * 2,
    "general": [(1, 1)] * 4 + [(0, 0)] * 4,
}
EXPECTED_KAPPA = {"test_unseen": 0.5, "unanswerable": 2 / 3, "general": 1.0, "answerable (pooled)": 0.7}
EXPECTED_N = {"test_unseen": 12, "unanswerable": 12, "general": 8, "answerable (pooled)": 20}
# the answer wordings of the two arms (no arm name appears in any text)
STYLE = {"base": "In short", "ft_k3": "As per the directions"}


def _write(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(json.dumps(r.model_dump() if hasattr(r, "model_dump") else r) + "\n" for r in rows)
    )


def items(e: str) -> list[EvalItem]:
    return [
        EvalItem(
            item_id=f"{e[:2]}{i}",
            source_id=f"src-{e[:2]}{i}",
            eval_set=e,
            question=f"Question {i} about rule {e[:2]}-{i} of the Reserve Bank?",
            reference=None if e == "unanswerable" else f"The reference answer to question {i} is {100 + i}.",
            regulation_area="Testing",
            category="fact-based",
            difficulty=3,
        )
        for i in range(N_ITEMS[e])
    ]


def answer(arm: str, e: str, i: int, truth: int) -> str:
    return f"{STYLE[arm]}, answer {i} to {e[:2]}: {'GOOD' if truth else 'BAD'}."


def write_run(root: Path = Path("."), judge_missing: tuple[str, str, str] | None = None) -> dict:
    """Eval sets, generations and reference-judge judgments of ARMS x SETS under `root`.
    `judge_missing` = (arm, eval_set, item_id) gets a missing judgment (score None)."""
    truth = {}
    for e in SETS:
        its = items(e)
        _write(root / P.eval_set_path(e), its)
        for a, arm in enumerate(ARMS):
            gens, judg = [], []
            for i, it in enumerate(its):
                human, judge = PAIRS[e][a * len(its) + i]
                truth[(arm, e, it.item_id)] = human
                gens.append(
                    Generation(
                        item_id=it.item_id,
                        source_id=it.source_id,
                        eval_set=e,
                        arm=arm,
                        question=it.question,
                        answer=answer(arm, e, i, human),
                        model_id="m",
                    )
                )
                missing = judge_missing == (arm, e, it.item_id)
                judg.append(
                    Judgment(
                        item_id=it.item_id,
                        source_id=it.source_id,
                        eval_set=e,
                        arm=arm,
                        score=None if missing else judge,
                        status="missing" if missing else "ok",
                        error="judge failed" if missing else None,
                        judge_backend="reference",
                        judge_model=REF_MODEL,
                    )
                )
            _write(root / P.generations(arm, e), gens)
            _write(root / P.judgments(arm, e), judg)
    return truth


def write_second_judge(root: Path = Path(".")) -> None:
    """A 'gemini' judge that agrees with the humans everywhere on test_unseen, in results_gemini/."""
    e = "test_unseen"
    its = items(e)
    for a, arm in enumerate(ARMS):
        rows = [
            Judgment(
                item_id=it.item_id,
                source_id=it.source_id,
                eval_set=e,
                arm=arm,
                score=PAIRS[e][a * len(its) + i][0],
                status="ok",
                judge_backend="gemini",
                judge_model="g",
            )
            for i, it in enumerate(its)
        ]
        _write(root / "results_gemini" / arm / "judgments" / f"{e}.jsonl", rows)


def label_like_a_person(sheet: Path, out: Path, edit=None) -> list[dict]:
    """Fill the `label` column from the answer text, as a labeller would, sort the rows by question (a
    spreadsheet user's reordering) and save. `edit(rows)` may spoil rows before saving."""
    import csv

    with sheet.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        header = list(reader.fieldnames or [])
        rows = list(reader)
    for r in rows:
        r["label"] = "1" if "GOOD" in r["model_answer"] else "0"
        r["comment"] = "checked"
    rows.sort(key=lambda r: r["question"])
    if edit:
        rows = edit(rows) or rows
    with out.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header)
        w.writeheader()
        w.writerows(rows)
    return rows
