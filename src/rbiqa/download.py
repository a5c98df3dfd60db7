"""Stage 1: obtain the raw QA corpus, validate every row, and snapshot it with a content hash.

- `data=sample`: the corpus shipped in data/sample.
- `data=rbi_hf`: the reference study's Hugging Face dataset at a pinned revision.

Invalid rows go to a quarantine file with their reasons, never silently dropped. The run fails when more
than `data.max_invalid_frac` of the rows are quarantined: at that point something is wrong with the source,
and continuing would quietly bias the study. One hostile row never stops the run: each quarantined row has
one counted `reason` (the report and manifest count them per set) and keeps what it was:

| reason        | what                                                  | kept as                           |
|---------------|-------------------------------------------------------|-----------------------------------|
| encoding      | a line that is not UTF-8, or a lone surrogate in text | `raw.base64` (+ escaped text)     |
| control_chars | NUL or another control character (not tab/CR/LF)      | `raw.text` or `row`               |
| oversized     | a line over `data.max_row_bytes` (never parsed), or a | `raw.head`, `raw.offset`,         |
|               | question/answer over `data.max_text_chars`            | `raw.bytes`, `raw.sha256` / `row` |
| json          | not valid JSON                                        | `raw.text`                        |
| not_object    | JSON, but not an object                               | `raw.text`                        |
| schema        | fails its pydantic schema                             | `row`                             |
| duplicate_id  | an id seen before                                     | `row`                             |

An oversized line is streamed, hashed and skipped rather than read into memory: its bytes stay in the
input file, whose sha256 the manifest records, at `raw.offset` (`raw.bytes` long, `raw.sha256`).
The quarantine file is written as ASCII JSON, so NULs, control characters and lone surrogates survive it.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import logging
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from pydantic import BaseModel, ValidationError

from rbiqa import paths as P
from rbiqa import stages
from rbiqa.config import stage_main, to_container
from rbiqa.io import InputError, sha256_path, write_json, write_jsonl
from rbiqa.manifest import write_manifest
from rbiqa.schemas import AbstentionTrainRecord, GeneralRecord, QARecord, UnanswerableRecord
from rbiqa.stages import flat

log = logging.getLogger(__name__)

OFFLINE_HINT = (
    "The Hugging Face hub is unreachable from here. Alternatives: use the shipped corpus with "
    "`data=sample` (the default), or restore a previous snapshot of data/raw with `dvc pull`."
)


HEAD_BYTES = 4096  # how much of an oversized line the quarantine shows
# C0 controls but tab, LF and CR (never valid raw in JSON text), DEL and C1: never meant in a question or
# answer, and NUL in particular truncates text in C-backed tools. A lone surrogate (from a JSON "\ud800"
# escape) cannot even be written back as UTF-8.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


@dataclass(frozen=True)
class Unparseable:
    """A raw line that never became a row: quarantined under `reason` with its bytes (see the module
    docstring for how they are kept)."""

    reason: str
    detail: str
    raw: dict[str, Any]


def _schema_reasons(err: ValidationError) -> list[str]:
    return [f"{'.'.join(str(x) for x in e['loc']) or 'row'}: {e['msg']}" for e in err.errors()]


def _strings(value: Any, where: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield where or "row", value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, f"{where}.{k}" if where else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{where}[{i}]")


def _char_problems(row: dict[str, Any]) -> tuple[str, list[str]] | None:
    """(reason, details) for the first kind of forbidden character in the raw row's strings. Checked on
    the raw values: the schema's whitespace stripping would silently eat a trailing control character."""
    for reason, pattern in (("encoding", _SURROGATE), ("control_chars", _CONTROL)):
        found = [
            f"{field}: {'lone surrogate' if reason == 'encoding' else 'control character'} "
            f"U+{ord(m.group()):04X} at char {m.start()}"
            for field, text in _strings(row)
            if (m := pattern.search(text))
        ]
        if found:
            return reason, found
    return None


def _row_bytes(row: dict[str, Any]) -> int:
    return len(json.dumps(row, ensure_ascii=False).encode("utf-8", "surrogatepass"))


def validate_rows(
    rows: Iterable[dict[str, Any] | Unparseable],
    model: type[BaseModel],
    max_text_chars: int,
    source: str,
    lines: Sequence[int] | None = None,
    max_row_bytes: int | None = None,
) -> tuple[list[dict], list[dict]]:
    """Split rows into valid records and quarantine records, each with one counted `reason` and its
    details; ids must be unique. `lines` gives each row's line in its file, for the quarantine."""
    good: list[dict] = []
    bad: list[dict] = []
    seen: set[str] = set()
    for i, row in enumerate(rows):
        where = {"line": lines[i]} if lines is not None else {}
        if isinstance(row, Unparseable):
            bad.append({"source": source, "index": i, **where, "reason": row.reason,
                        "reasons": [row.detail], "raw": row.raw})  # fmt: skip
            continue
        problems: list[tuple[str, str]] = []
        rec = None
        if max_row_bytes and (size := _row_bytes(row)) > max_row_bytes:
            problems.append(("oversized", f"row: {size} bytes > data.max_row_bytes={max_row_bytes}"))
        elif chars := _char_problems(row):
            problems += [(chars[0], d) for d in chars[1]]
        else:
            try:
                rec = model.model_validate(row)
            except ValidationError as e:
                problems += [("schema", r) for r in _schema_reasons(e)]
        if rec is not None:
            data = rec.model_dump()
            for field in ("question", "answer"):
                if field in data and len(data[field]) > max_text_chars:
                    problems.append(
                        ("oversized", f"{field}: oversized ({len(data[field])} > {max_text_chars} chars)")
                    )
            if data["id"] in seen:
                problems.append(("duplicate_id", f"id: duplicate id {data['id']!r}"))
        if problems:
            bad.append({"source": source, "index": i, **where, "reason": problems[0][0],
                        "reasons": [d for _, d in problems], "row": row})  # fmt: skip
        else:
            seen.add(data["id"])
            good.append(data)
    return good, bad


def _escaped(raw: bytes) -> str:
    return raw.decode("utf-8", "backslashreplace")


def _parse_line(raw: bytes, lineno: int) -> dict[str, Any] | Unparseable:
    """One line (without its line break) as a row, or as an Unparseable that keeps its bytes."""
    try:
        text = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
    except UnicodeDecodeError as e:
        return Unparseable(
            "encoding",
            f"line {lineno}: not valid UTF-8 (byte 0x{raw[e.start]:02x} at byte {e.start})",
            {"base64": base64.b64encode(raw).decode("ascii"), "text": _escaped(raw)},
        )
    if m := _CONTROL.search(text):
        return Unparseable(
            "control_chars",
            f"line {lineno}: raw control character U+{ord(m.group()):04X} at char {m.start()}",
            {"text": text},
        )
    try:
        row = json.loads(text)
    except json.JSONDecodeError as e:
        return Unparseable("json", f"line {lineno}: not valid JSON ({e.msg})", {"text": text})
    if not isinstance(row, dict):
        return Unparseable("not_object", f"line {lineno}: not a JSON object", {"text": text})
    return row


def read_local(path: str | Path, max_row_bytes: int | None = None) -> tuple[list[Any], list[int]]:
    """Read a JSONL file as bytes: (rows, their line numbers). A line that cannot become a row is kept
    as an `Unparseable`, so that it is quarantined with its reason and line number instead of aborting
    the whole run or vanishing. A line over `max_row_bytes` (line break not counted) is hashed in pieces
    and never held whole."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"corpus file {path} does not exist")
    # +2: room for a CRLF, so that a line of exactly max_row_bytes is read whole
    limit = max_row_bytes + 2 if max_row_bytes else -1
    rows: list[Any] = []
    lines: list[int] = []
    offset = 0
    with open(path, "rb") as f:
        for lineno in itertools.count(1):
            start = offset
            raw = f.readline(limit)
            if not raw:
                break
            offset += len(raw)
            complete = raw.endswith(b"\n") or len(raw) < limit or limit < 0
            body = raw.rstrip(b"\r\n") if complete else raw
            if max_row_bytes and (not complete or len(body) > max_row_bytes):
                h = hashlib.sha256(raw)
                while not complete and (piece := f.readline(1 << 20)):
                    h.update(piece)
                    offset += len(piece)
                    complete = piece.endswith(b"\n")
                rows.append(
                    Unparseable(
                        "oversized",
                        f"line {lineno}: {offset - start} bytes, over data.max_row_bytes={max_row_bytes}; "
                        "not parsed",
                        {
                            "head": _escaped(raw[:HEAD_BYTES]),
                            "offset": start,
                            "bytes": offset - start,
                            "sha256": h.hexdigest(),
                        },
                    )
                )
                lines.append(lineno)
                continue
            if not body.strip():
                continue
            rows.append(_parse_line(raw[:-1] if raw.endswith(b"\n") else raw, lineno))
            lines.append(lineno)
    return rows, lines


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


def _write_quarantine(rows: list[dict]) -> None:
    # ASCII JSON: a NUL, a control character or a lone surrogate is written as a \u escape, losslessly
    write_jsonl(P.RAW_QUARANTINE, rows, ensure_ascii=True)


def run(cfg: DictConfig) -> dict[str, Any]:
    d = cfg.data
    max_row_bytes = d.get("max_row_bytes")
    if d.source == "local":
        qa_rows, qa_lines = read_local(d.path, max_row_bytes)
    elif d.source == "hf":
        qa_rows, qa_lines = load_hf(d), None
    else:
        raise InputError(f"data.source must be 'local' or 'hf', got {d.source!r}")

    sets = {
        "qa": (qa_rows, qa_lines, QARecord, P.RAW_QA),
        "unanswerable": (
            *read_local(d.unanswerable_path, max_row_bytes),
            UnanswerableRecord,
            P.RAW_UNANSWERABLE,
        ),
        "general": (*read_local(d.general_path, max_row_bytes), GeneralRecord, P.RAW_GENERAL),
        "abstention_train": (
            *read_local(d.abstention_train_path, max_row_bytes),
            AbstentionTrainRecord,
            P.RAW_ABSTENTION_TRAIN,
        ),
        "general_train": (
            *read_local(d.general_train_path, max_row_bytes),
            GeneralRecord,
            P.RAW_GENERAL_TRAIN,
        ),
    }
    report: dict[str, Any] = {"data": d.name, "sets": {}}
    quarantine: list[dict] = []
    for name, (rows, lines, model, out) in sets.items():
        good, bad = validate_rows(rows, model, d.max_text_chars, name, lines, max_row_bytes)
        quarantine.extend(bad)
        frac = len(bad) / max(len(rows), 1)
        reasons = Counter(b["reason"] for b in bad)  # one reason per row: they sum to `quarantined`
        report["sets"][name] = {
            "rows_in": len(rows),
            "valid": len(good),
            "quarantined": len(bad),
            "quarantined_frac": round(frac, 4),
            "reasons": dict(sorted(reasons.items())),
        }
        if reasons:
            log.warning("%s: %d rows quarantined: %s", name, len(bad), dict(reasons))
        if not good:
            _write_quarantine(quarantine)
            raise InputError(f"{name}: no valid rows out of {len(rows)}; see {P.RAW_QUARANTINE} for why")
        if frac > d.max_invalid_frac:
            _write_quarantine(quarantine)
            raise InputError(
                f"{name}: {len(bad)}/{len(rows)} rows invalid ({frac:.1%} > data.max_invalid_frac="
                f"{d.max_invalid_frac}); see {P.RAW_QUARANTINE} for the rows and reasons"
            )
        # the probes (eval sets) may be subsampled; training pools are kept whole
        limit = {"qa": d.get("subsample"), "abstention_train": None, "general_train": None}.get(
            name, d.get("subsample_probes")
        )
        if limit and len(good) > limit:
            good = subsample(good, int(limit), int(cfg.seed))
            report["sets"][name]["subsampled_to"] = len(good)
        write_jsonl(out, good)
        log.info("%s: %d valid, %d quarantined", name, len(good), len(bad))
    _write_quarantine(quarantine)
    report["snapshot_sha256"] = {k: sha256_path(v[3]) for k, v in sets.items()}
    write_json(P.RAW_REPORT, report)
    outputs = flat(stages.download_outputs())
    inputs = flat(stages.download_inputs(d))
    extra = {
        "snapshot_sha256": report["snapshot_sha256"],
        "quarantined": {k: v["reasons"] for k, v in report["sets"].items()},
    }
    if d.source == "hf":
        extra["hf"] = {"repo": d.hf_repo, "revision": d.hf_revision, "split": d.hf_split}
    write_manifest(P.RAW_MANIFEST, "download_data", to_container(cfg), inputs, outputs, extra)
    return report


@stage_main
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
