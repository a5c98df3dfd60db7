"""The paper rehearsal (`make rehearse-paper`, benchmarks/rehearse_paper.sh): the paper experiment's DAG at
toy scale, on CPU, offline, against a local Gemini stub. This module holds its checks:

- `config_drift`: experiment=paper_rehearsal may differ from experiment=paper only in the keys that its
  `rehearsal.changes` lists (a listed key covers everything below it), and every listed key must differ
  (no stale entries). tests/unit/test_paper_rehearsal_config.py runs it; so does the launcher, first.
- `check_outputs`: after the run, that the stub was asked for rephrasings and verdicts, that the ablation
  figure has a point for every ablation arm, that the seed table has the main arm's three seeds, and that
  the PDF's first page says it is a rehearsal.

    python -m rbiqa.rehearsal check-config          # exit 1 on drift
    python -m rbiqa.rehearsal stub-port             # the port of the stub the config points at
    python -m rbiqa.rehearsal check-outputs --stub-url http://127.0.0.1:18765 [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from omegaconf import OmegaConf

EXPERIMENT = "paper_rehearsal"
REFERENCE = "paper"
NOTICE_HEAD = "REHEARSAL, NOT A RESULT"  # the notice's first words, looked for on the PDF's first page
EXEMPT = ("rehearsal",)  # the rehearsal's own section
BUDGET_S = 30 * 60  # the rehearsal's wall-time budget on the 2-core box (recorded, not enforced)


class RehearsalError(RuntimeError):
    """A rehearsal check failed; the message lists every problem."""


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """{dotted key: leaf value} of a plain (resolved) config; lists are leaves."""
    if isinstance(node, Mapping):
        out: dict[str, Any] = {}
        for k, v in node.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, Mapping) and v:
                out.update(flatten(v, key))
            else:
                out[key] = v
        return out
    return {prefix: node}


def _covered(key: str, allowed: Iterable[str]) -> bool:
    return any(key == a or key.startswith(a + ".") for a in allowed)


def allowed_changes(cfg: Mapping[str, Any]) -> dict[str, str]:
    """{config path: reason} from the rehearsal's `rehearsal.changes` list of {key, why}."""
    changes = (cfg.get("rehearsal") or {}).get("changes") or []
    out = {}
    for c in changes:
        if not c.get("key") or not c.get("why"):
            raise RehearsalError(f"rehearsal.changes entries need a key and a why, got {c!r}")
        out[str(c["key"])] = str(c["why"])
    return out


def config_drift(reference: Mapping[str, Any], rehearsal: Mapping[str, Any]) -> dict[str, list[str]]:
    """Keys where the two resolved configs differ although `rehearsal.changes` does not list them
    (`unlisted`), and listed keys under which nothing differs (`stale`)."""
    allowed = allowed_changes(rehearsal)
    a, b = flatten(reference), flatten(rehearsal)
    differ = sorted(k for k in set(a) | set(b) if a.get(k, _MISSING) != b.get(k, _MISSING))
    differ = [k for k in differ if not _covered(k, EXEMPT)]
    unlisted = [k for k in differ if not _covered(k, allowed)]
    stale = sorted(key for key in allowed if not any(_covered(k, [key]) for k in differ))
    return {"unlisted": unlisted, "stale": stale}


_MISSING = object()


_MIRROR = re.compile(r"\$\{[^${}]+\}")  # a value that is one interpolation of another key, e.g. ${..model}


def _drop_mirrors(plain: dict[str, Any], raw: Mapping[str, Any], in_target: bool = False) -> None:
    for k, v in raw.items():
        if isinstance(v, Mapping):
            _drop_mirrors(plain[k], v, in_target or "_target_" in v)
        elif in_target and isinstance(v, str) and _MIRROR.fullmatch(v):
            del plain[k]


def compose_plain(experiment: str, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The resolved config, less the arguments of `_target_` nodes (e.g. `judge.impl`) that only repeat
    another key: such a copy differs exactly where the key it repeats differs, which is compared itself."""
    from rbiqa.config import compose

    cfg = compose([f"experiment={experiment}", *overrides])
    plain = OmegaConf.to_container(cfg, resolve=True)
    _drop_mirrors(plain, OmegaConf.to_container(cfg, resolve=False))
    return plain


def check_config(overrides: Sequence[str] = (), rehearsal_overrides: Sequence[str] = ()) -> dict[str, str]:
    """Raise RehearsalError on drift between experiment=paper and experiment=paper_rehearsal."""
    ref = compose_plain(REFERENCE, overrides)
    reh = compose_plain(EXPERIMENT, [*overrides, *rehearsal_overrides])
    drift = config_drift(ref, reh)
    problems = [
        *(
            f"{k}: differs from experiment={REFERENCE} but is not in rehearsal.changes"
            for k in drift["unlisted"]
        ),
        *(f"{k}: listed in rehearsal.changes but does not differ (stale entry)" for k in drift["stale"]),
    ]
    if problems:
        raise RehearsalError("the rehearsal drifted from the paper experiment:\n  " + "\n  ".join(problems))
    return allowed_changes(reh)


def stub_port(cfg: Mapping[str, Any]) -> int:
    """The port of the local stub that both Gemini clients (rephraser and judge) point at."""
    urls = {cfg["rephrase"]["base_url"], cfg["judge"]["base_url"]}
    if len(urls) != 1 or None in urls:
        raise RehearsalError(f"rephrase.base_url and judge.base_url must name the same stub, got {urls}")
    u = urlparse(urls.pop())
    if u.hostname not in ("127.0.0.1", "localhost") or not u.port:
        raise RehearsalError(f"the rehearsal's Gemini must be a local stub with a port, got {u.geturl()}")
    return u.port


# --- after the run


def stub_stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url.rstrip("/") + "/stub/stats", timeout=10) as r:  # noqa: S310 (local)
        return json.loads(r.read())


# which stub request kinds each rule's jobs send
STUB_KINDS = {"rephrase": ("rephrase",), "judge": ("judge", "abstention")}


def check_stub(
    stats: Mapping[str, Any], ran: Iterable[str] = tuple(STUB_KINDS), cached: Mapping[str, int] | None = None
) -> list[str]:
    """The stub answered every kind of request that the rules which ran in this invocation send (a rule
    whose outputs were up to date sent none). A rule whose jobs were answered from the cache instead
    (`cached`: cache hits per rule) passes too: the rehearsal's model names are the stub's own
    (rephrase.model_id, judge.model), which key the caches, so only the stub can have filled them."""
    ok = stats.get("kinds_ok", {})
    ran, cached = set(ran), dict(cached or {})
    return [
        f"the {rule} jobs ran but the stub answered no {kind} request and none came from its cache "
        f"(counts: {dict(stats)})"
        for rule, kinds in STUB_KINDS.items()
        if rule in ran and not cached.get(rule)
        for kind in kinds
        if not ok.get(kind)
    ]


def cache_hits() -> dict[str, int]:
    """Answers the rephrase and judge jobs took from their caches (the rephrase report, judge manifests)."""
    from rbiqa import paths as P
    from rbiqa.files import Manifest
    from rbiqa.io import read_json, read_validated

    out = {"rephrase": 0, "judge": 0}
    if P.REPHRASE_REPORT.exists():
        calls = read_json(P.REPHRASE_REPORT).get("calls", {})
        out["rephrase"] = int(calls.get("cached_calls") or 0)
    for man in Path("results").glob("*/judgments/*.manifest.json"):
        cache = read_validated(man, Manifest).extra.get("cache") or {}
        out["judge"] += int(cache.get("hits") or 0)
    return out


def ablation_points(cfg, root: Path = Path(".")) -> dict[str, dict[str, Any]]:
    """Per ablation family (config path) drawn in the ablation figure: its arms and their x values, and
    which of the study's ablation arms are missing from the figure or have no accuracy to plot."""
    from rbiqa.figures.data import Metrics, ablation_families
    from rbiqa.study import load_study

    study = load_study(cfg)
    m = Metrics.load()
    families = ablation_families(study, m.main_arm, root)
    acc = m.frame("accuracy")
    sets = [e for e in cfg.report.figures.ladder_sets if e in m.eval_sets] or m.eval_sets
    out = {}
    for param, arms in study.ablation_params().items():
        drawn = families.get(param, {})
        plotted = {
            a: sorted(
                acc[(acc["arm"] == a) & acc["accuracy"].notna() & acc["eval_set"].isin(sets)]["eval_set"]
            )
            for a in drawn
        }
        values = [_setting(root, a, param) for a in arms]
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        out[param] = {
            "arms": list(arms),
            "values": values,
            "drawn": numeric,  # a yes/no or text setting has no x axis: those arms are in the tables only
            "x": drawn,
            "points_per_arm": {a: len(s) for a, s in plotted.items()},
            "missing": [a for a in arms if a not in drawn or not plotted.get(a)] if numeric else [],
        }
    return out


def _setting(root: Path, arm: str, param: str) -> Any:
    """The value of a config path that an arm trained with (its train manifest's resolved config)."""
    from rbiqa import paths as P
    from rbiqa.files import Manifest
    from rbiqa.io import read_validated

    node: Any = read_validated(root / P.adapter_dir(arm) / "manifest.json", Manifest).config_dict
    for part in param.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


def check_ablations(points: Mapping[str, Mapping[str, Any]]) -> list[str]:
    problems = []
    for param, p in points.items():
        if p["missing"]:
            problems.append(f"ablation figure {param}: no point for {p['missing']}")
    return problems


def seed_rows(root: Path = Path(".")) -> list[dict[str, Any]]:
    from rbiqa.figures.data import Metrics

    return [r for r in Metrics.load()["seeds"].get("records", []) if not r.get("flag")]


def check_seeds(rows: Sequence[Mapping[str, Any]], table_tex: str, n: int = 3) -> list[str]:
    problems = []
    if not rows:
        problems.append("no seed record in results/metrics/seeds.json")
    for r in rows:
        if len(r["replicates"]) != n:
            problems.append(
                f"seed record {r['arm']}/{r['eval_set']} has {len(r['replicates'])} seeds, not {n}"
            )
    # the table's "seeds" column: every row says n
    cells = re.findall(r"^.*?&.*?&\s*(\d+)\s*&", table_tex, re.M)
    if not cells or any(int(c) != n for c in cells):
        problems.append(f"results/tables/seeds.tex: seeds column {cells}, expected {n} in every row")
    return problems


def round_records(cfg, root: Path = Path(".")) -> dict[str, dict[str, Any]]:
    """{refine arm: its train summary's round counts (None if missing)} for every refine arm of the study."""
    from rbiqa import paths as P
    from rbiqa.io import read_json
    from rbiqa.study import load_study

    out: dict[str, dict[str, Any]] = {}
    for a in load_study(cfg).arms:
        if a.kind == "refine":
            f = root / P.adapter_dir(a.name) / "train_summary.json"
            s = read_json(f) if f.exists() else {}
            out[a.name] = {"round": (s.get("data") or {}).get("round"), "steps": s.get("global_step")}
    return out


def check_rounds(rounds: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Every refine arm trained its round on rows of the mining set, the mined ones on rows judged wrong
    only, and a control on as many rows as the arm it controls."""
    problems = []
    for arm, r in rounds.items():
        rnd = r["round"]
        if not rnd or not rnd.get("round_rows") or r["steps"] != rnd.get("steps"):
            problems.append(f"{arm}: no completed round in its train summary ({r})")
        elif rnd["rows_picked_by"] == "judged_wrong" and rnd["round_rows_judged_wrong"] != rnd["round_rows"]:
            problems.append(f"{arm}: trained on rows that were not judged wrong ({rnd})")
        elif rnd["round_rows"] != rnd["judged_wrong"]:
            problems.append(
                f"{arm}: {rnd['round_rows']} rows, not the {rnd['judged_wrong']} the mining found"
            )
    return problems


def first_page_text(pdf: Path) -> str:
    proc = subprocess.run(
        ["pdftotext", "-f", "1", "-l", "1", "-layout", str(pdf), "-"],
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout


def check_notice(text: str, head: str = NOTICE_HEAD) -> list[str]:
    flat = " ".join(text.split())
    return [] if head in flat else [f"the PDF's first page does not say {head!r}"]


def check_outputs(
    stub_url: str | None, ran: Iterable[str] = tuple(STUB_KINDS), pdf: Path = Path("paper/report.pdf")
) -> dict[str, Any]:
    from rbiqa import paths as P
    from rbiqa.config import compose

    cfg = compose([f"experiment={EXPERIMENT}"])
    problems: list[str] = []
    report: dict[str, Any] = {}
    if stub_url:
        report["stub"] = stub_stats(stub_url)
        report["stub_rules_run"] = sorted(set(ran) & set(STUB_KINDS))
        report["stub_cache_hits"] = cache_hits()
        problems += check_stub(report["stub"], ran, report["stub_cache_hits"])
    report["ablation"] = ablation_points(cfg)
    problems += check_ablations(report["ablation"])
    rows = seed_rows()
    report["seeds"] = [
        {"arm": r["arm"], "eval_set": r["eval_set"], "replicates": r["replicates"]} for r in rows
    ]
    problems += check_seeds(rows, (P.TABLES / "seeds.tex").read_text(encoding="utf-8"))
    report["rounds"] = round_records(cfg)
    problems += check_rounds(report["rounds"])
    page1 = first_page_text(pdf)
    report["first_page"] = " ".join(page1.split())
    problems += check_notice(page1)
    report["problems"] = problems
    return report


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rbiqa.rehearsal", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("check-config", help="fail on drift between experiment=paper and paper_rehearsal")
    sub.add_parser("stub-port", help="print the port of the Gemini stub the rehearsal points at")
    sub.add_parser("key-envs", help="print the api_key_env names of the rehearsal's Gemini clients")
    co = sub.add_parser("check-outputs", help="check the finished run (stub counts, figure, seeds, PDF)")
    co.add_argument("--stub-url", default=None)
    co.add_argument(
        "--ran", default=",".join(STUB_KINDS), help="rules that ran in this invocation (comma-separated)"
    )
    co.add_argument("--json", type=Path, default=None, help="also write what was checked here")
    co.add_argument("--wall-s", type=float, default=None, help="the run's wall time (recorded, budgeted)")
    co.add_argument("--jobs", type=int, default=None, help="jobs the run executed (recorded)")
    co.add_argument("--dag-jobs", type=int, default=None, help="jobs in the whole DAG (recorded)")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "check-config":
            changes = check_config()
            print(
                f"experiment={EXPERIMENT} differs from experiment={REFERENCE} only in {len(changes)} listed keys:"
            )
            for k, why in changes.items():
                print(f"  {k}: {why}")
        elif args.cmd == "stub-port":
            print(stub_port(compose_plain(EXPERIMENT)))
        elif args.cmd == "key-envs":
            cfg = compose_plain(EXPERIMENT)
            print(" ".join(sorted({cfg["rephrase"]["api_key_env"], cfg["judge"]["api_key_env"]})))
        else:
            report = check_outputs(args.stub_url, [r for r in args.ran.split(",") if r])
            if args.wall_s is not None:
                report["wall_s"] = round(args.wall_s, 1)
                report["budget_s"] = BUDGET_S
                report["within_budget"] = args.wall_s <= BUDGET_S
            report["jobs_run"], report["dag_jobs"] = args.jobs, args.dag_jobs
            if args.json:
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps(report, indent=1, default=_jsonable) + "\n", encoding="utf-8")
            print(
                json.dumps({k: v for k, v in report.items() if k != "ablation"}, indent=1, default=_jsonable)
            )
            for param, p in report["ablation"].items():
                print(
                    f"ablation {param}: x={p['x']} points per arm={p['points_per_arm']} missing={p['missing']}"
                )
            if report["problems"]:
                raise RehearsalError("rehearsal checks failed:\n  " + "\n  ".join(report["problems"]))
            print("rehearsal checks passed")
    except RehearsalError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return None
    return str(v)


if __name__ == "__main__":
    sys.exit(main())
