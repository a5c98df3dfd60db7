#!/usr/bin/env bash
# End-to-end budget check (issue: "Study arms and ablations").
# Runs the default pipeline from a fresh clone of this repository, using the already-installed .venv
# (the budget counts pipeline time, not the environment install), then a no-op rerun. Per-rule times come
# from Snakemake's benchmark: files. Results: benchmarks/results/e2e_<experiment>.{json,md}.
#   usage: benchmarks/e2e.sh [experiment] [extra snakemake args...]
# E2E_OVERRIDES='["study.arms=[base,ft_k3]"]' passes Hydra overrides to every stage (Snakemake's `overrides`
# config); E2E_LABEL names the results (default: the experiment), so such a run keeps the default's record.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
exp=${1:-default}; shift || true
label=${E2E_LABEL:-$exp}
config=(experiment="$exp")
[ -n "${E2E_OVERRIDES:-}" ] && config+=("overrides=$E2E_OVERRIDES")
venv=${VENV:-$repo/.venv}
work=$(mktemp -d "${TMPDIR:-/tmp}/rbiqa-e2e.XXXXXX")
trap 'rm -rf "$work"' EXIT
git clone -q "$repo" "$work/repo"
cd "$work/repo"
export PATH="$venv/bin:$PATH"
# the clone's own code, not the tree the venv was installed from (rbiqa is an editable install there):
# stage code hashes in the stamps must come from the clone, or an edit elsewhere would defeat the no-op
export PYTHONPATH="$work/repo/src${PYTHONPATH:+:$PYTHONPATH}"
start=$(date +%s.%N)
status=ok
snakemake --cores all --config "${config[@]}" "$@" > "$work/run.log" 2>&1 || status=failed
end=$(date +%s.%N)
noop_end=$end
if [ "$status" = ok ]; then
  snakemake --cores all --config "${config[@]}" "$@" > "$work/noop.log" 2>&1 || status=noop_failed
  noop_end=$(date +%s.%N)
  grep -q "Nothing to be done" "$work/noop.log" || { echo "no-op rerun was not a no-op:"; tail -30 "$work/noop.log"; status=noop_failed; }
else
  tail -50 "$work/run.log"
fi
# the figures of a failed run are recorded too (status says so), with its logs kept beside them
mkdir -p "$repo/benchmarks/results"
rm -rf "$repo/benchmarks/results/e2e_${label}_logs" && cp -r logs/"$exp" "$repo/benchmarks/results/e2e_${label}_logs" || true
# what the timed run found (metrics, tables, number macros, train summaries, the PDF), so the figures quoted
# for a timing come from that very run; small files, kept beside the logs
art="$repo/benchmarks/results/e2e_${label}_artifacts"
rm -rf "$art" && mkdir -p "$art"
cp -r results/metrics results/tables "$art"/ 2>/dev/null || true
cp paper/numbers.tex paper/report.pdf "$art"/ 2>/dev/null || true
# content hashes of what the study concluded (judgments, metrics but their manifest): two runs of the same
# commit, or of a refactor and the commit before it, are compared with `diff` of these files
sha256sum results/*/judgments/*.jsonl $(ls results/metrics/*.json | grep -v manifest.json) > "$art/hashes.sha256" || true
for s in results/*/adapter/train_summary.json; do
  [ -f "$s" ] && cp "$s" "$art/train_summary_$(basename "$(dirname "$(dirname "$s")")").json"
done
python - "$exp" "$start" "$end" "$noop_end" "$repo/benchmarks/results" "$status" "$label" "${E2E_OVERRIDES:-}" <<'PY'
import csv, glob, json, os, platform, sys
exp, start, end, noop_end, outdir, status, label, overrides = sys.argv[1], *map(float, sys.argv[2:5]), *sys.argv[5:9]
rows = []
base = f"benchmarks/results/{exp}"
for f in sorted(glob.glob(f"{base}/**/*.tsv", recursive=True)):
    with open(f) as fh:
        r = next(csv.DictReader(fh, delimiter="\t"))
    rows.append({"job": os.path.relpath(f, base)[:-4], "seconds": round(float(r["s"]), 1),
                 "max_rss_mb": round(float(r["max_rss"]), 0) if r.get("max_rss", "NA") != "NA" else None})
by_rule = {}
for r in rows:
    rule = r["job"].split("/")[0]
    by_rule[rule] = round(by_rule.get(rule, 0) + r["seconds"], 1)
out = {"experiment": exp, "label": label, "overrides": overrides or None, "status": status, "cores": os.cpu_count(), "platform": platform.platform(),
       "pipeline_wall_s": round(end - start, 1), "noop_rerun_s": round(noop_end - end, 1),
       "budget_s": {"pipeline": 1800, "noop": 15}, "per_rule_s": by_rule, "jobs": rows}
out["within_budget"] = {"pipeline": out["pipeline_wall_s"] <= out["budget_s"]["pipeline"],
                        "noop": out["noop_rerun_s"] <= out["budget_s"]["noop"]}
os.makedirs(outdir, exist_ok=True)
with open(f"{outdir}/e2e_{label}.json", "w") as fh:
    json.dump(out, fh, indent=2)
with open(f"{outdir}/e2e_{label}.md", "w") as fh:
    fh.write(f"# e2e {label} ({status}): pipeline {out['pipeline_wall_s']} s, no-op rerun {out['noop_rerun_s']} s "
             f"({out['cores']} cores; budget {out['budget_s']['pipeline']} s / {out['budget_s']['noop']} s, "
             f"within: {out['within_budget']['pipeline']} / {out['within_budget']['noop']})\n\n| rule | seconds (sum over jobs) |\n|---|---|\n")
    for k, v in sorted(by_rule.items(), key=lambda kv: -kv[1]):
        fh.write(f"| {k} | {v} |\n")
print(json.dumps({k: out[k] for k in ("status", "pipeline_wall_s", "noop_rerun_s", "within_budget", "per_rule_s")}, indent=2))
PY
[ "$status" = ok ]
