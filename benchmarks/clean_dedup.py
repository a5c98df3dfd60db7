"""Benchmark: exact + near dedup and the contamination audit of the clean stage at 50,000 questions.

Synthetic, seeded, RBI-like templated questions with planted duplicates: exact copies (case, spacing and
punctuation changed) and near-copies (one word dropped or a letter changed), plus a test set with
planted near-copies of training questions. Records wall times and what was caught to
benchmarks/results/clean_dedup.json. Target: < 60 s on 2 cores.

    python benchmarks/clean_dedup.py [--n 50000] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time
from collections import Counter
from pathlib import Path

from omegaconf import OmegaConf

from rbiqa.clean.contamination import ContaminationConfig, EvalText, TrainText, audit, is_contamination
from rbiqa.clean.dedup import DedupConfig, dedup
from rbiqa.config import compose

ENTITIES = ["a scheduled commercial bank", "an NBFC", "a small finance bank", "a payments bank", "an urban co-operative bank",
            "a regional rural bank", "an NBFC-MFI", "a housing finance company", "a foreign bank branch", "a local area bank",
            "a primary dealer", "an asset reconstruction company", "a credit information company", "a payment aggregator",
            "a state co-operative bank", "a core investment company", "an all-India financial institution",
            "a prepaid payment instrument issuer", "a white-label ATM operator", "an authorised dealer Category-I bank"]  # fmt: skip
TOPICS = ["periodic KYC updation", "the CRR", "the SLR", "priority sector lending", "gold loan LTV", "fraud reporting",
          "the Liquidity Coverage Ratio", "large exposures", "interest rate risk in the banking book",
          "customer grievance redressal", "digital lending apps", "outsourcing of IT services", "the leverage ratio",
          "provisioning for standard assets", "wilful defaulters", "technical write-offs", "the Integrated Ombudsman Scheme",
          "cyber security incidents", "dividend declaration", "unhedged foreign currency exposure", "bulk deposits",
          "board-level risk committees", "penal charges on loans", "floating-rate EMI resets", "co-lending with NBFCs",
          "account aggregators", "card-on-file tokenisation", "the Net Stable Funding Ratio", "inoperative accounts",
          "unclaimed deposits", "compromise settlements", "factoring of receivables", "securitisation of standard assets",
          "recovery agents", "locker agreements", "the SARFAESI Act", "the FEMA reporting of ODI", "ECB end-use"]  # fmt: skip
VERBS = ["comply with", "report on", "disclose", "maintain", "review", "apply", "follow", "monitor", "audit",
         "notify the RBI about", "seek Board approval for", "publish"]  # fmt: skip
QUALIFIERS = ["", "", "", " for loans above Rs {amt} crore", " in its rural branches", " during a lockdown",
              " for its top {pct} borrowers", " within {days} days of a breach", " after a merger", " for NRI customers",
              " under the co-lending model", " for MSME borrowers", " when its CRAR falls below {pct}%"]  # fmt: skip
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]  # fmt: skip
TEMPLATES = [
    "What does the RBI require of {ent} regarding {topic}{qual}?",
    "How often must {ent} {verb} {topic}{qual}?",
    "Within how many days must {ent} {verb} {topic} after {month} {year}?",
    "What changed for {ent} in {topic} under the {month} {year} circular?",
    "{Ent} has deposits of Rs {amt} crore. What does the RBI expect on {topic}?",
    "Under the {year} Master Direction, must {ent} {verb} {topic}{qual}?",
    "What is the minimum {pct}% threshold for {ent} on {topic}?",
    "Can {ent} {verb} {topic} without Board approval{qual}?",
    "Which returns must {ent} file on {topic} by {month} {year}?",
    "What penalty can the RBI impose on {ent} that fails to {verb} {topic}?",
    "Is {ent} allowed to outsource {topic}{qual}?",
    "Who in {ent} is accountable for {topic}?",
    "From which date did {topic} rules apply to {ent}?",
    "{Ent} breached the {topic} norms in {month} {year}. What must it do next?",
    "How should {ent} treat {topic} in its annual financial statements?",
    "What disclosures on {topic} must {ent} place on its website{qual}?",
]  # fmt: skip


def make_question(rng: random.Random) -> str:
    ent = rng.choice(ENTITIES)
    return rng.choice(TEMPLATES).format(
        ent=ent, Ent=ent[0].upper() + ent[1:], topic=rng.choice(TOPICS), verb=rng.choice(VERBS),
        month=rng.choice(MONTHS), year=rng.randint(2005, 2025), amt=rng.choice([50, 100, 250, 500, 1000, 5000]),
        pct=rng.choice([5, 10, 15, 20, 25, 40]),
        qual=rng.choice(QUALIFIERS).format(amt=rng.choice([1, 5, 25, 100]), pct=rng.choice([9, 10, 20]),
                                            days=rng.choice([7, 14, 30])),
    )  # fmt: skip


def exact_variant(q: str, rng: random.Random) -> str:
    q = q.upper() if rng.random() < 0.5 else q.lower()
    return "  " + q.replace("?", " ?").replace(" ", "  ", 1)


def near_variant(q: str, rng: random.Random) -> str:
    words = q.split()
    i = rng.randrange(1, len(words) - 1)
    if rng.random() < 0.5 and not any(c.isdigit() for c in words[i]):
        del words[i]  # drop one word
    else:
        w = words[i]
        j = rng.randrange(len(w))
        words[i] = (
            w[:j] + ("x" if w[j] != "x" else "y") + w[j + 1 :] if not w[j].isdigit() else w
        )  # one letter
    return " ".join(words)


def build(n: int, seed: int, dup_frac: float = 0.02, near_frac: float = 0.02):
    rng = random.Random(seed)
    base_n = int(n * (1 - dup_frac - near_frac))
    seen, base = set(), []
    while len(base) < base_n:
        q = make_question(rng)
        if q not in seen:  # the planted copies are then the only intended duplicates
            seen.add(q)
            base.append(q)
    rows = [{"row_id": f"s{i}:v0", "variant_idx": 0, "question": q} for i, q in enumerate(base)]
    planted = {"exact": 0, "near": 0}
    while len(rows) < n:
        src = rng.randrange(base_n)
        kind = "exact" if planted["exact"] < int(n * dup_frac) else "near"
        q = exact_variant(base[src], rng) if kind == "exact" else near_variant(base[src], rng)
        rows.append({"row_id": f"dup{len(rows)}:{kind}:of:s{src}", "variant_idx": 0, "question": q})
        planted[kind] += 1
    rng.shuffle(rows)
    return rows, planted, base, rng


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--tests", type=int, default=5_000, help="test questions for the contamination audit")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default="benchmarks/results/clean_dedup.json")
    args = ap.parse_args()

    t0 = time.perf_counter()
    rows, planted, base, rng = build(args.n, args.seed)
    t_build = time.perf_counter() - t0

    # the shipped configuration (conf/clean/default.yaml), so the figure is the pipeline's
    clean_cfg = OmegaConf.to_container(compose([]).clean, resolve=True)
    dcfg = DedupConfig.from_config(clean_cfg["dedup"], args.seed)
    cfg = ContaminationConfig.from_config(clean_cfg["contamination"], args.seed)
    t0, c0 = time.perf_counter(), time.process_time()
    keep, removed = dedup(rows, dcfg, progress=False)
    t_dedup, c_dedup = time.perf_counter() - t0, time.process_time() - c0
    # a planted pair is caught when either member was removed as a duplicate of the other (the shuffle
    # may put the copy first, and then the source row is the one that goes)
    gone = {rows[r["index"]]["row_id"]: r["dup_of"] for r in removed}
    caught = {"exact": 0, "near": 0}
    for r in rows:
        rid = r["row_id"]
        if ":of:" in rid:
            kind, src = rid.split(":")[1], rid.split(":of:")[1] + ":v0"
            caught[kind] += gone.get(rid) == src or gone.get(src) == rid
    planted_members = {r["row_id"] for r in rows if ":of:" in r["row_id"]}
    planted_members |= {r["row_id"].split(":of:")[1] + ":v0" for r in rows if ":of:" in r["row_id"]}
    # removals between two distinct generated questions (template siblings differing in a word or two)
    other_removals = sum(
        1 for rid, dup in gone.items() if not (rid in planted_members and dup in planted_members)
    )

    # contamination: fresh test questions plus planted near-copies of kept training questions
    kept_rows = [rows[i] for i in keep]
    n_planted = args.tests // 10
    tests, seen = [], {r["question"] for r in rows}
    while len(tests) < args.tests - n_planted:
        q = make_question(rng)
        if q not in seen:
            seen.add(q)
            tests.append(EvalText(f"t{len(tests)}", f"t{len(tests)}", "test_unseen", q))
    victims = rng.sample(range(len(kept_rows)), n_planted)
    for v in victims:
        tests.append(
            EvalText(f"leak{v}", f"leak{v}", "test_unseen", near_variant(kept_rows[v]["question"], rng))
        )
    train = [TrainText(r["row_id"], r["row_id"].split(":")[0], "question", r["question"]) for r in kept_rows]
    t0, c0 = time.perf_counter(), time.process_time()
    hits = audit(train, tests, cfg, progress=False)
    t_audit, c_audit = time.perf_counter() - t0, time.process_time() - c0
    flagged = {h["train_row_id"] for h in hits if is_contamination(h, cfg)}
    planted_ids = {kept_rows[v]["row_id"] for v in victims}

    result = {
        "n_questions": args.n,
        "n_test_questions": len(tests),
        "seed": args.seed,
        "seconds": {"build": round(t_build, 2), "dedup_exact_plus_near": round(t_dedup, 2),
                    "contamination_audit": round(t_audit, 2), "total_timed": round(t_dedup + t_audit, 2)},
        # single-threaded code: CPU seconds are what the wall time would be on an otherwise idle core
        "cpu_seconds": {"dedup_exact_plus_near": round(c_dedup, 2), "contamination_audit": round(c_audit, 2),
                        "total_timed": round(c_dedup + c_audit, 2)},
        "dedup": {"planted": planted, "caught": caught, "removed_total": len(removed),
                  "removed_between_distinct_generated_questions": other_removals, "kept": len(keep),
                  "config": {k: v for k, v in vars(dcfg).items() if k != "seed"}},
        "contamination": {"planted_near_copies": n_planted, "caught": len(planted_ids & flagged),
                          "flagged_rows": len(flagged), "hits_total": len(hits),
                          "flagged_hits_by_detector": dict(Counter(h["detector"] for h in hits if is_contamination(h, cfg))),
                          "note": "flags beyond the planted copies are template siblings of the synthetic generator "
                                  "(questions that differ in one slot), not an estimate of real false positives",
                          "config": {k: v for k, v in vars(cfg).items() if k != "seed"}},
        "target_seconds": 60,
        "machine": {"cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
                    "python": platform.python_version(), "platform": platform.platform()},
    }  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
