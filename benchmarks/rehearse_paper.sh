#!/usr/bin/env bash
# `make rehearse-paper`: the paper experiment's DAG at toy scale, on CPU, offline (issue #16).
#
# 1. checks that conf/experiment/paper_rehearsal.yaml differs from experiment=paper only in the keys its
#    rehearsal.changes lists (python -m rbiqa.rehearsal check-config);
# 2. starts the local Gemini stub (tests/stubs/gemini_stub.py, answers: tests/stubs/rehearsal_responder.py)
#    on the port of the config's base_url, with a dummy key in every api_key_env; a trap stops it on exit;
# 3. runs `snakemake --cores all --config experiment=paper_rehearsal` to paper/report.pdf, timed;
# 4. checks the outputs (python -m rbiqa.rehearsal check-outputs): the stub answered rephrase, judge and
#    abstention requests (those of the rules that ran now: a rerun with everything up to date asks it
#    nothing; `make rehearse-paper REHEARSE_ARGS=--forceall` reruns every job); the ablation figure has a
#    point for every numeric ablation arm; the seed table has 3 seeds; the PDF's first page says
#    REHEARSAL, NOT A RESULT. Any failure exits non-zero.
# Records wall time, job counts and the checks in benchmarks/results/rehearse_paper.json.
# Extra arguments go to snakemake (e.g. --forceall to rerun everything). Not part of `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PY="$VENV/bin/python"
SNAKEMAKE="$VENV/bin/snakemake"
CORES=${CORES:-all}
EXP=paper_rehearsal
LOGDIR=logs/$EXP
RECORD=benchmarks/results/rehearse_paper.json
mkdir -p "$LOGDIR" benchmarks/results

test -f data/models/smollm2_135m/model.safetensors || {
  echo "SmolLM2 is missing: run \`make model\` first" >&2
  exit 1
}

"$PY" -m rbiqa.rehearsal check-config

PORT=$("$PY" -m rbiqa.rehearsal stub-port)
STUB_URL="http://127.0.0.1:$PORT"
# The stub accepts any key; a dummy one keeps a real key from being sent anywhere.
for name in $("$PY" -m rbiqa.rehearsal key-envs); do
  export "$name=rehearsal-dummy-key"
done

. benchmarks/gemini_stub.sh
stop_stub() {
  kill "${STUB_PID:-0}" 2>/dev/null || true
  wait "${STUB_PID:-0}" 2>/dev/null || true
}
trap stop_stub EXIT
start_gemini_stub "$PY" "$PORT" rehearsal "$LOGDIR/stub.log"
echo "Gemini stub serving on $STUB_URL (pid $STUB_PID)"

# jobs in the whole DAG (dry run of everything), then the real run
DAG_JOBS=$("$SNAKEMAKE" --cores "$CORES" --config experiment=$EXP --dry-run --forceall --quiet rules 2>&1 |
  awk '$1 == "total" {print $2}' | tail -n 1)
start=$SECONDS
"$SNAKEMAKE" --cores "$CORES" --config experiment=$EXP "$@" 2>&1 | tee "$LOGDIR/snakemake.log"
WALL=$((SECONDS - start))
JOBS=$(grep -E '^[0-9]+ of [0-9]+ steps \([0-9]+%\) done' "$LOGDIR/snakemake.log" | tail -n 1 | awk '{print $3}')
echo "rehearsal run: ${WALL}s wall, ${JOBS:-0} jobs run of ${DAG_JOBS:-?} in the DAG"

# the rules that ran now (a rule whose outputs were up to date asked the stub nothing)
RAN=$(grep -oE '^(local)?rule [a-z_]+:' "$LOGDIR/snakemake.log" | awk '{print $2}' | tr -d : | sort -u | paste -sd, -)
"$PY" -m rbiqa.rehearsal check-outputs --stub-url "$STUB_URL" --ran "$RAN" --json "$RECORD" \
  --wall-s "$WALL" --jobs "${JOBS:-0}" --dag-jobs "${DAG_JOBS:-0}"
echo "recorded in $RECORD; the PDF: paper/report.pdf"
