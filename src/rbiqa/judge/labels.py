"""The human-label loop: a blinded sheet out, validated labels in, so a user can check the judge on a run.

    python -m rbiqa.judge.labels export experiment=default [labels.n_per_set=40] [labels.name=<name>]
    python -m rbiqa.judge.labels ingest FILE [labels.labeller=<who>] [labels.allow_missing=true]

`export` draws a seeded sample of the run's judged answers (results/<arm>/judgments/<set>.jsonl, status
ok), stratified by eval set (`labels.n_per_set` each) and, within a set, split evenly across the arms,
with as few repeated source questions as the quota allows. It writes:
  data/labels/sheets/<name>.csv        the sheet for the labeller: an opaque row id, the eval set, the
                                       rubric, question, reference answer, model answer and an empty
                                       `label` column; no arm, no judge verdict, rows shuffled
  data/labels/sheets/<name>.README.md  the instructions and the full rubric
  data/labels/keys/<name>.key.csv      row id -> arm, eval set, item id, source id and text hashes (do not
                                       give it to the labeller)
  data/labels/keys/<name>.export.manifest.json
`ingest FILE` reads the labelled sheet, validates every row (label 0/1, known row id, no duplicates, the
texts unchanged since the export, no missing labels unless `labels.allow_missing=true`), un-blinds it
through the key and writes data/labels/<name>.csv (arm, eval_set, item_id, source_id, score, ...; the
format of `judge.agreement.human_labels_csv`), a copy of the sheet as labelled and a manifest. Problems
are reported together, with counts and CSV line numbers; nothing is written then.

judge_agreement reads every data/labels/*.csv (rbiqa.judge.agreement). These are small files meant to be
committed to git. Not a pipeline stage: no Snakemake rule runs it, and `labels.*` is in no stage's stamp.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import shutil
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig
from pydantic import ValidationError

from rbiqa import paths as P
from rbiqa.config import stage_main, to_container
from rbiqa.io import InputError, atomic_write, iter_jsonl, sha256_text
from rbiqa.judge.inputs import load_eval_items, load_generations
from rbiqa.manifest import write_manifest
from rbiqa.schemas import Judgment

log = logging.getLogger(__name__)

SHEET_COLUMNS = (
    "row_id",
    "eval_set",
    "rubric",
    "question",
    "reference_answer",
    "model_answer",
    "label",
    "comment",
)
KEY_COLUMNS = ("row_id", "arm", "eval_set", "item_id", "source_id", "question_sha256", "answer_sha256")
# data/labels/<name>.csv; the first four are rbiqa.judge.agreement.HUMAN_COLUMNS
LABEL_COLUMNS = (
    "arm",
    "eval_set",
    "item_id",
    "score",
    "source_id",
    "answer_sha256",
    "labeller",
    "sheet",
    "row_id",
)
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.]*$")
MAX_SHOWN = 8
ABSTAIN_SET = "unanswerable"

RUBRIC_CORRECTNESS = (
    "1 = every key fact of the reference answer (names, numbers, dates, limits, conditions, obligations) "
    "is stated correctly, none is missing and nothing contradicts it; wording may differ. "
    "0 = otherwise, including vague or evasive answers."
)
RUBRIC_ABSTENTION = (
    "No reference answer: the question asks about a rule or circular that does not exist. "
    "1 = the model abstains or says it cannot confirm such a rule, without invented specifics. "
    "0 = it answers as though the rule exists or invents details (circular numbers, dates, amounts)."
)


def rubric(eval_set: str) -> str:
    return RUBRIC_ABSTENTION if eval_set == ABSTAIN_SET else RUBRIC_CORRECTNESS


def norm_hash(text: str | None) -> str:
    """sha256 of the text with whitespace collapsed: survives a spreadsheet's line-ending changes."""
    return sha256_text(" ".join((text or "").split()))


# ----------------------------------------------------------------------------------------------- paths


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise InputError(
            f"labels.name {name!r}: use letters, digits, '_' and '.', starting with a letter or digit"
        )
    return name


def sheet_name(cfg: DictConfig) -> str:
    return check_name(str(cfg.labels.get("name") or cfg.get("experiment_name") or "labels"))


def row_id(name: str, k: int, width: int) -> str:
    return f"{name}-{k:0{width}d}"


def name_of(rid: str) -> str | None:
    name, sep, num = rid.rpartition("-")
    return name if sep and num.isdigit() and NAME_RE.match(name) else None


# ---------------------------------------------------------------------------------------------- export


def judged_population(arms: Sequence[str], eval_sets: Sequence[str]) -> tuple[pd.DataFrame, dict, list[Path]]:
    """Every (arm, eval set, item) that the run's judge scored (status ok), with its texts."""
    rows, counts, files = [], defaultdict(dict), []
    for e in eval_sets:
        items_list = load_eval_items(e)
        items = {i.item_id: i for i in items_list}
        files.append(P.eval_set_path(e))
        for arm in arms:
            jpath = P.judgments(arm, e)
            if not jpath.is_file():
                log.warning("no judgments for %s/%s (%s): not sampled", arm, e, jpath)
                counts[e][arm] = {"judged": 0, "not_judged": 0, "file": "absent"}
                continue
            gens = load_generations(arm, e, items_list)
            files += [jpath, P.generations(arm, e)]
            judged = not_judged = 0
            for lineno, raw in enumerate(iter_jsonl(jpath), 1):
                try:
                    j = Judgment.model_validate(raw)
                except ValidationError as err:
                    raise InputError(f"{jpath}:{lineno}: not a Judgment row ({err})") from err
                item, gen = items.get(j.item_id), gens.get(j.item_id)
                if item is None:
                    raise InputError(f"{jpath}:{lineno}: item {j.item_id!r} is not in {P.eval_set_path(e)}")
                if j.status != "ok" or gen is None or gen.answer is None:
                    not_judged += 1
                    continue
                judged += 1
                rows.append(
                    {
                        "arm": arm,
                        "eval_set": e,
                        "item_id": j.item_id,
                        "source_id": item.source_id,
                        "question": item.question,
                        "reference": item.reference or "",
                        "answer": gen.answer,
                    }
                )
            counts[e][arm] = {"judged": judged, "not_judged": not_judged}
    cols = ["arm", "eval_set", "item_id", "source_id", "question", "reference", "answer"]
    return pd.DataFrame(rows, columns=cols), dict(counts), files


def allocate(n: int, available: dict[str, int], rng: np.random.Generator) -> dict[str, int]:
    """Split n evenly over the arms, capped by what each has; what a capped arm cannot take goes to the
    others; a remainder goes to arms in a seeded random order."""
    quota = dict.fromkeys(available, 0)
    left = min(n, sum(available.values()))
    while left > 0:
        open_arms = [a for a in available if quota[a] < available[a]]
        share, rest = divmod(left, len(open_arms))
        order = [open_arms[i] for i in rng.permutation(len(open_arms))]
        for i, a in enumerate(order):
            take = min(share + (1 if i < rest else 0), available[a] - quota[a])
            quota[a] += take
            left -= take
    return quota


def stratified_sample(pop: pd.DataFrame, eval_sets: Sequence[str], n_per_set: int, seed: int) -> pd.DataFrame:
    """n_per_set rows per eval set, split evenly across arms; a source question is reused (for another
    arm) only once every source of the set has been drawn. Deterministic given the seed."""
    rng = np.random.default_rng(seed)
    picked = []
    for e in eval_sets:
        sub = pop[pop["eval_set"] == e].sort_values(["arm", "item_id"]).reset_index(drop=True)
        if sub.empty:
            continue
        quota = allocate(n_per_set, sub.groupby("arm").size().to_dict(), rng)
        order = rng.permutation(len(sub))
        chosen: list[int] = []
        taken: set[int] = set()
        used_sources: set[str] = set()
        for fresh_only in (True, False):
            for i in order:
                r = sub.iloc[i]
                if quota[r["arm"]] == 0 or i in taken or (fresh_only and r["source_id"] in used_sources):
                    continue
                chosen.append(int(i))
                taken.add(int(i))
                quota[r["arm"]] -= 1
                used_sources.add(r["source_id"])
        picked.append(sub.iloc[chosen])
    if not picked:
        return pop.iloc[0:0]
    out = pd.concat(picked, ignore_index=True)
    return out.iloc[rng.permutation(len(out))].reset_index(drop=True)


def write_csv(path: Path, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    with atomic_write(path) as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(columns)
        w.writerows(rows)


def readme_text(name: str, n_rows: int, by_set: dict[str, int]) -> str:
    sets = "\n".join(f"- `{e}`: {n} rows" for e, n in by_set.items())
    return f"""# Labelling sheet `{name}`

`{name}.csv` holds {n_rows} answers written by language models to questions about Reserve Bank of India
regulations. For each row, put **1** or **0** in the `label` column; `comment` is optional free text.
Do not edit, add or reorder other columns' text (sorting the rows is fine). The model that wrote each
answer and any automatic verdict are deliberately hidden.

{sets}

## Rubric (the one the automatic judge is asked to apply)

For every eval set except `{ABSTAIN_SET}` (there is a reference answer):
- **1** if every key fact of the reference answer (names, numbers, amounts, percentages, dates, time
  limits, conditions, entities, obligations) is stated correctly in the model answer, none is missing,
  and the answer contradicts nothing in the reference and adds no incorrect facts. Wording may differ;
  numbers written differently but equal in value ("4.5 per cent" and "4.5%") are the same.
- **0** otherwise. A vague, generic, evasive or hedging answer ("consult the official website") is 0.

For `{ABSTAIN_SET}` (no reference answer: the question asks about a rule, circular, limit or institution
that does not exist, or something no RBI document settles), the correct behaviour is to abstain:
- **1** if the model abstains or clearly says it cannot confirm such a rule, and presents no invented
  specifics (circular numbers, dates, amounts, percentages, deadlines, named provisions) as fact.
- **0** if it answers as though the rule exists, or fabricates any such detail, even with a caveat.

## When done

Save as CSV (UTF-8) and run, from the repository root:

    python -m rbiqa.judge.labels ingest path/to/{name}.csv labels.labeller=<your name>

Leave a row's label empty only if you cannot judge it; ingest refuses empty labels unless
`labels.allow_missing=true`, and then reports how many were left out.
"""


def export(cfg: DictConfig) -> dict:
    lcfg = cfg.labels
    name = sheet_name(cfg)
    sheet, readme, key = P.label_sheet(name), P.label_readme(name), P.label_key(name)
    existing = [p for p in (key, P.labels_csv(name)) if p.exists()]
    if existing and not lcfg.get("overwrite"):
        raise InputError(
            f"{', '.join(map(str, existing))} already exist: a labeller may be working on sheet {name!r}. "
            "Pick another labels.name=..., or pass labels.overwrite=true to replace it"
        )
    n_per_set = int(lcfg.n_per_set)
    if n_per_set < 1:
        raise InputError(f"labels.n_per_set must be >= 1, got {n_per_set}")
    seed = int(lcfg.seed if lcfg.get("seed") is not None else cfg.seed)
    arms = list(lcfg.get("arms") or cfg.study.arms)
    eval_sets = list(lcfg.get("eval_sets") or cfg.study.eval_sets)
    unknown = [e for e in eval_sets if e not in P.EVAL_SETS]
    if unknown:
        raise InputError(f"labels.eval_sets: unknown {unknown}; known: {list(P.EVAL_SETS)}")
    pop, counts, inputs = judged_population(arms, eval_sets)
    if pop.empty:
        raise InputError(
            f"no judged answers found for arms {arms} on {eval_sets}: run the judge stage first "
            "(snakemake --cores all, or python -m rbiqa.judge ...)"
        )
    sample = stratified_sample(pop, eval_sets, n_per_set, seed)
    width = max(4, len(str(len(sample))))
    sample["row_id"] = [row_id(name, k + 1, width) for k in range(len(sample))]
    write_csv(
        sheet,
        SHEET_COLUMNS,
        (
            [r.row_id, r.eval_set, rubric(r.eval_set), r.question, r.reference, r.answer, "", ""]
            for r in sample.itertuples()
        ),
    )
    write_csv(
        key,
        KEY_COLUMNS,
        (
            [r.row_id, r.arm, r.eval_set, r.item_id, r.source_id, norm_hash(r.question), norm_hash(r.answer)]
            for r in sample.itertuples()
        ),
    )
    by_set = {e: int((sample["eval_set"] == e).sum()) for e in eval_sets if (sample["eval_set"] == e).any()}
    with atomic_write(readme) as f:
        f.write(readme_text(name, len(sample), by_set))
    strata = sample.groupby(["eval_set", "arm"]).size()
    extra = {
        "subcommand": "export",
        "sheet": name,
        "seed": seed,
        "n_per_set": n_per_set,
        "n_rows": len(sample),
        "rows_by_eval_set": by_set,
        "rows_by_stratum": {f"{e}/{a}": int(n) for (e, a), n in strata.items()},
        "population": counts,
        "distinct_sources_by_eval_set": {
            e: int(sample.loc[sample["eval_set"] == e, "source_id"].nunique()) for e in by_set
        },
    }
    write_manifest(
        P.label_export_manifest(name), "labels_export", to_container(cfg), inputs, [sheet, readme, key], extra
    )
    short = [e for e in eval_sets if by_set.get(e, 0) < n_per_set]
    if short:
        log.warning("fewer judged answers than labels.n_per_set=%d in %s: took them all", n_per_set, short)
    log.info(
        "wrote %s (%d rows: %s), instructions %s; keep %s from the labeller",
        sheet,
        len(sample),
        by_set,
        readme,
        key,
    )
    return extra


# ---------------------------------------------------------------------------------------------- ingest


def read_csv_rows(path: Path, required: Sequence[str], what: str) -> tuple[list[str], list[tuple[int, dict]]]:
    """(header, [(CSV line, row)]) of a UTF-8 CSV, or an InputError that says what is wrong with it."""
    if not path.is_file():
        raise InputError(f"{what} not found: {path}")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(
            f"{path}: not UTF-8 text (bad byte 0x{data[e.start]:02x} at offset {e.start}); "
            "save the sheet as 'CSV UTF-8'"
        ) from None
    if "\x00" in text:
        raise InputError(f"{path}: contains NUL bytes; this is not a CSV file")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if not header:
            raise InputError(f"{path}: empty file, expected a header with {list(required)}")
        header = [h.strip() for h in header]
        missing = [c for c in required if c not in header]
        if missing:
            raise InputError(f"{path}: missing columns {missing}; the header is {header}")
        if len(set(header)) != len(header):
            raise InputError(f"{path}: repeated column names in the header {header}")
        rows, bad = [], []
        for fields in reader:
            line = reader.line_num
            if not fields or all(not f.strip() for f in fields):
                continue
            if len(fields) != len(header):
                bad.append(f"line {line}: {len(fields)} fields, the header has {len(header)}")
                continue
            rows.append((line, dict(zip(header, fields, strict=True))))
    except csv.Error as e:
        raise InputError(f"{path}: malformed CSV near line {reader.line_num}: {e}") from None
    if bad:
        raise InputError(f"{path}: {len(bad)} malformed rows: " + "; ".join(bad[:MAX_SHOWN]))
    return header, rows


def read_key(name: str) -> dict[str, dict]:
    path = P.label_key(name)
    _, rows = read_csv_rows(
        path, KEY_COLUMNS, f"key of sheet {name!r} (was the sheet exported in this checkout?)"
    )
    return {r["row_id"]: r for _, r in rows}


def _summary(problems: dict[str, list[str]], path: Path, n_rows: int) -> str:
    parts = []
    for kind, where in problems.items():
        shown = ", ".join(where[:MAX_SHOWN]) + (
            f", ... ({len(where) - MAX_SHOWN} more)" if len(where) > MAX_SHOWN else ""
        )
        parts.append(f"  {kind}: {len(where)} ({shown})")
    total = sum(map(len, problems.values()))
    return f"{path}: {total} problems in {n_rows} rows; nothing was stored:\n" + "\n".join(parts)


def validate_sheet(path: Path, allow_missing: bool) -> tuple[str, pd.DataFrame, dict]:
    """Check a labelled sheet against its key: (sheet name, un-blinded labels, counts)."""
    header, rows = read_csv_rows(path, ("row_id", "label"), "labelled sheet")
    if not rows:
        raise InputError(f"{path}: no rows")
    names = {n for _, r in rows if (n := name_of(r["row_id"].strip()))}
    if not names:
        raise InputError(
            f"{path}: no row_id looks like <sheet>-<number>; is this a sheet from `labels export`?"
        )
    if len(names) > 1:
        raise InputError(f"{path}: rows of several sheets {sorted(names)}; ingest one sheet per file")
    name = names.pop()
    key = read_key(name)
    check_text = [c for c in ("question", "model_answer") if c in header]
    if len(check_text) < 2:
        log.warning("%s: no question/model_answer columns; cannot check that the texts are unchanged", path)
    problems: dict[str, list[str]] = defaultdict(list)
    seen: dict[str, int] = {}
    out, missing = [], []
    for line, r in rows:
        rid, label = r["row_id"].strip(), r["label"].strip()
        where = f"line {line}"
        if not rid:
            problems["no row_id"].append(where)
            continue
        if rid not in key:
            problems["unknown row_id (not in the key)"].append(f"{where} {rid!r}")
            continue
        if rid in seen:
            problems["duplicate row_id"].append(f"{where} {rid!r}, first at line {seen[rid]}")
            continue
        seen[rid] = line
        k = key[rid]
        if r.get("eval_set", k["eval_set"]).strip() != k["eval_set"] or (
            len(check_text) == 2
            and (
                norm_hash(r["question"]) != k["question_sha256"]
                or norm_hash(r["model_answer"]) != k["answer_sha256"]
            )
        ):
            problems["text differs from the export (edited, or another sheet's row)"].append(
                f"{where} {rid!r}"
            )
            continue
        if label == "":
            missing.append(where)
            continue
        if label not in ("0", "1"):
            problems["label not 0 or 1"].append(f"{where} {label[:20]!r}")
            continue
        out.append(
            {
                **{c: k[c] for c in ("arm", "eval_set", "item_id", "source_id", "answer_sha256")},
                "score": int(label),
                "row_id": rid,
            }
        )
    missing += [f"{rid!r} (row deleted)" for rid in sorted(set(key) - set(seen))]
    if missing and not allow_missing:
        problems["no label (pass labels.allow_missing=true to store the others)"] = missing
    if problems:
        raise InputError(_summary(problems, path, len(rows)))
    if not out:
        raise InputError(f"{path}: no row has a label")
    df = pd.DataFrame(out).sort_values(["eval_set", "arm", "item_id"]).reset_index(drop=True)
    counts = {
        "n_rows": len(rows),
        "n_labelled": len(df),
        "n_missing": len(missing),
        "n_key_rows": len(key),
        "labelled_by_eval_set": {e: int(n) for e, n in df.groupby("eval_set").size().items()},
        "positive_rate_by_eval_set": {e: float(s.mean()) for e, s in df.groupby("eval_set")["score"]},
    }
    return name, df, counts


def ingest(cfg: DictConfig, file: str | Path) -> dict:
    lcfg = cfg.labels
    path = Path(file)
    name, df, counts = validate_sheet(path, bool(lcfg.get("allow_missing")))
    out = P.labels_csv(name)
    if out.exists() and not lcfg.get("overwrite"):
        raise InputError(f"{out} already exists; pass labels.overwrite=true to replace it with {path}")
    labeller = str(lcfg.get("labeller") or "anonymous")
    copy = P.label_sheet_labelled(name)
    if path.resolve() != copy.resolve():
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, copy)
    df = df.assign(labeller=labeller, sheet=name)
    write_csv(out, LABEL_COLUMNS, df[list(LABEL_COLUMNS)].itertuples(index=False))
    extra = {"subcommand": "ingest", "sheet": name, "labeller": labeller, "source_file": str(path), **counts}
    write_manifest(
        P.label_ingest_manifest(name),
        "labels_ingest",
        to_container(cfg),
        [copy, P.label_key(name)],
        [out],
        extra,
    )
    if counts["n_missing"]:
        log.warning(
            "%s: %d rows have no label and were not stored (labels.allow_missing=true)",
            path,
            counts["n_missing"],
        )
    log.info(
        "wrote %s: %d labels %s; judge_agreement will compare every judge with them",
        out,
        len(df),
        counts["labelled_by_eval_set"],
    )
    return {"path": out.as_posix(), **extra}


# ------------------------------------------------------------------------------------ labels for agreement


def load_label_files(paths: Sequence[Path]) -> pd.DataFrame:
    """Every ingested label file (and a hand-made human_labels_csv) as one frame, one row per labelled
    (arm, eval_set, item_id). The same answer labelled in two files must carry the same label."""
    from rbiqa.judge.agreement import load_human_labels

    frames = []
    for p in paths:
        df = load_human_labels(p)
        for c in ("source_id", "answer_sha256", "labeller"):
            if c not in df.columns:
                df[c] = ""
        df["file"] = Path(p).as_posix()
        frames.append(
            df[["arm", "eval_set", "item_id", "score", "source_id", "answer_sha256", "labeller", "file"]]
        )
    cols = ["arm", "eval_set", "item_id", "score", "source_id", "answer_sha256", "labeller", "file"]
    if not frames:
        return pd.DataFrame(columns=cols)
    df = pd.concat(frames, ignore_index=True)
    keys = ["arm", "eval_set", "item_id"]
    conflict = df.groupby(keys)["score"].nunique() > 1
    if conflict.any():
        k = conflict[conflict].index[0]
        files = sorted(df.set_index(keys).loc[[k], "file"].unique())
        raise InputError(
            f"{int(conflict.sum())} answers are labelled differently in two label files, e.g. {k} in {files}; "
            "resolve them (or remove one file) before measuring agreement"
        )
    return df.drop_duplicates(keys).reset_index(drop=True)


# ------------------------------------------------------------------------------------------------- CLI

USAGE = __doc__.split("\n\n")[1]


def cli(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in ("export", "ingest"):
        sys.exit(f"usage:\n{USAGE}")
    cmd, rest = args[0], args[1:]
    if cmd == "ingest":
        if not rest or "=" in rest[0]:
            sys.exit(f"ingest needs the labelled sheet as its first argument\nusage:\n{USAGE}")
        file, rest = rest[0], rest[1:]

    def run(cfg: DictConfig) -> dict:
        try:
            return ingest(cfg, file) if cmd == "ingest" else export(cfg)
        except InputError as e:  # the user's input: the message says what to fix, no traceback
            sys.exit(f"labels {cmd}: {e}")

    sys.argv = [sys.argv[0], *rest]
    stage_main(run)()


if __name__ == "__main__":
    cli()
