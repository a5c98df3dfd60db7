"""Stage 1: obtain the raw QA corpus, validate every row, and snapshot it with a content hash.

- `data=sample`: the corpus shipped in data/sample.
- `data=rbi_hf`: the reference study's Hugging Face dataset at a pinned revision.

Invalid rows go to a quarantine file with their reasons, never silently dropped. The run fails when more
than `data.max_invalid_frac` of the rows are quarantined: at that point something is wrong with the source,
and continuing would quietly bias the study.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from pydantic import BaseModel, ValidationError

from rbiqa import paths as P
from rbiqa.config import stage_main, to_container
from rbiqa.io import InputError, sha256_path, write_json, write_jsonl
from rbiqa.manifest import write_manifest
from rbiqa.schemas import GeneralRecord, QARecord, UnanswerableRecord

log = logging.getLogger(__name__)

OFFLINE_HINT = (
    "The Hugging Face hub is unreachable from here. Alternatives: use the shipped corpus with "
    "`data=sample` (the default), or restore a previous snapshot of data/raw with `dvc pull`."
)


def _reasons(err: ValidationError) -> list[str]:
    return [f"{'.'.join(str(x) for x in e['loc']) or 'row'}: {e['msg']}" for e in err.errors()]


def validate_rows(
    rows: Iterable[dict[str, Any]], model: type[BaseModel], max_text_chars: int, source: str
) -> tuple[list[dict], list[dict]]:
    """Split rows into valid records and quarantined rows (with reasons); ids must be unique."""
    good: list[dict] = []
    bad: list[dict] = []
    seen: set[str] = set()
    for i, row in enumerate(rows):
        reasons: list[str] = []
        rec = None
        if isinstance(row, Unparseable):
            reasons = [f"row: {row}"]
        else:
            try:
                rec = model.model_validate(row)
            except ValidationError as e:
                reasons = _reasons(e)
        if rec is not None:
            data = rec.model_dump()
            for field in ("question", "answer"):
                if field in data and len(data[field]) > max_text_chars:
                    reasons.append(f"{field}: oversized ({len(data[field])} > {max_text_chars} chars)")
            if data["id"] in seen:
                reasons.append(f"id: duplicate id {data['id']!r}")
        if reasons:
            bad.append({"source": source, "index": i, "reasons": reasons, "row": row})
        else:
            seen.add(data["id"])
            good.append(data)
    return good, bad


def read_local(path: str | Path) -> list[Any]:
    """Read a JSONL file. A line that is not a JSON object is kept as an `Unparseable` marker, so that
    it is quarantined with its line number instead of aborting the whole run or vanishing."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"corpus file {path} does not exist")
    rows: list[Any] = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                rows.append(Unparseable(f"line {lineno}: not valid JSON ({e.msg})"))
                continue
            rows.append(row if isinstance(row, dict) else Unparseable(f"line {lineno}: not a JSON object"))
    return rows


class Unparseable(str):
    """A raw line that could not be parsed; its text is the reason."""


def subsample(rows: list[dict], n: int, seed: int) -> list[dict]:
    """The n rows with the smallest (seed, id) hash: a deterministic, order-free subset for quick runs."""
    from rbiqa.split import source_hash

    return sorted(rows, key=lambda r: (source_hash(seed, r["id"]), r["id"]))[:n]


def question_id(question: str) -> str:
    """The HF dataset has no ids: key rows by the SHA-1 of the question, like the calibration data."""
    return hashlib.sha1(question.strip().encode("utf-8")).hexdigest()[:12]


def map_hf_row(row: dict[str, Any], columns: dict[str, str | None]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for ours, theirs in columns.items():
        if theirs is None:
            continue
        if theirs not in row:
            raise InputError(
                f"the HF dataset has no column {theirs!r} (mapped to {ours!r}); its columns are "
                f"{sorted(row)}. Fix data.columns in conf/data/rbi_hf.yaml."
            )
        out[ours] = row[theirs]
    if "id" not in out:
        out["id"] = question_id(str(out.get("question", "")))
    if isinstance(out.get("as_of"), str) and (year := re.search(r"(19|20)\d\d", out["as_of"])):
        out["as_of"] = int(year.group(0))
    if isinstance(out.get("estimated_difficulty"), str) and out["estimated_difficulty"].isdigit():
        out["estimated_difficulty"] = int(out["estimated_difficulty"])
    if isinstance(out.get("category"), str):
        out["category"] = out["category"].strip().lower().replace(" ", "-").replace("_", "-")
    return out


def load_hf(cfg: DictConfig) -> list[dict]:
    """`datasets.load_dataset` at the pinned revision, with the offline case made explicit."""
    import datasets

    if not cfg.get("hf_revision"):
        raise InputError(
            f"data.hf_revision is not set: pin a commit of {cfg.hf_repo} (see the comment in "
            "conf/data/rbi_hf.yaml) so the snapshot is reproducible. " + OFFLINE_HINT
        )
    try:
        ds = datasets.load_dataset(cfg.hf_repo, revision=cfg.hf_revision, split=cfg.hf_split)
    except Exception as e:  # datasets raises many types (ConnectionError, HfHubHTTPError, OfflineMode...)
        raise RuntimeError(
            f"could not load {cfg.hf_repo}@{cfg.hf_revision} ({type(e).__name__}: {e}). {OFFLINE_HINT}"
        ) from e
    columns = dict(cfg.columns)
    return [map_hf_row(dict(r), columns) for r in ds]


def run(cfg: DictConfig) -> dict[str, Any]:
    d = cfg.data
    if d.source == "local":
        qa_rows = read_local(d.path)
    elif d.source == "hf":
        qa_rows = load_hf(d)
    else:
        raise InputError(f"data.source must be 'local' or 'hf', got {d.source!r}")

    sets = {
        "qa": (qa_rows, QARecord, P.RAW_QA),
        "unanswerable": (read_local(d.unanswerable_path), UnanswerableRecord, P.RAW_UNANSWERABLE),
        "general": (read_local(d.general_path), GeneralRecord, P.RAW_GENERAL),
    }
    report: dict[str, Any] = {"data": d.name, "sets": {}}
    quarantine: list[dict] = []
    for name, (rows, model, out) in sets.items():
        good, bad = validate_rows(rows, model, d.max_text_chars, name)
        quarantine.extend(bad)
        frac = len(bad) / max(len(rows), 1)
        reasons = Counter(r.split(":")[0] for b in bad for r in b["reasons"])
        report["sets"][name] = {
            "rows_in": len(rows),
            "valid": len(good),
            "quarantined": len(bad),
            "quarantined_frac": round(frac, 4),
            "reasons": dict(reasons),
        }
        if not good:
            raise InputError(f"{name}: no valid rows out of {len(rows)}")
        if frac > d.max_invalid_frac:
            write_jsonl(P.RAW_QUARANTINE, quarantine)
            raise InputError(
                f"{name}: {len(bad)}/{len(rows)} rows invalid ({frac:.1%} > data.max_invalid_frac="
                f"{d.max_invalid_frac}); see {P.RAW_QUARANTINE} for the rows and reasons"
            )
        limit = d.get("subsample") if name == "qa" else d.get("subsample_probes")
        if limit and len(good) > limit:
            good = subsample(good, int(limit), int(cfg.seed))
            report["sets"][name]["subsampled_to"] = len(good)
        write_jsonl(out, good)
        log.info("%s: %d valid, %d quarantined", name, len(good), len(bad))
    write_jsonl(P.RAW_QUARANTINE, quarantine)
    report["snapshot_sha256"] = {k: sha256_path(v[2]) for k, v in sets.items()}
    write_json(P.RAW_REPORT, report)
    outputs = [P.RAW_QA, P.RAW_UNANSWERABLE, P.RAW_GENERAL, P.RAW_QUARANTINE, P.RAW_REPORT]
    inputs = [P.stamp("download_data")]
    if d.source == "local":
        inputs.append(d.path)
    inputs += [d.unanswerable_path, d.general_path]
    extra = {"snapshot_sha256": report["snapshot_sha256"]}
    if d.source == "hf":
        extra["hf"] = {"repo": d.hf_repo, "revision": d.hf_revision, "split": d.hf_split}
    write_manifest(P.RAW_MANIFEST, "download_data", to_container(cfg), inputs, outputs, extra)
    return report


@stage_main
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
