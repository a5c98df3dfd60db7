#!/usr/bin/env bash
# Proof that a refactor changes no result: the content hashes of what a commit's pipeline concludes.
#   usage: benchmarks/hash_proof.sh <commit> <label>
# Clones <commit> fresh (empty caches; only the converted base model is copied in, as `make model` would
# write it), then runs the `tiny` experiment twice in that clone:
#   offline  the default backends: shipped rephrasings, the reference judge;
#   llm      rephrase=gemini and judge=gemini against the local Gemini stub (tests/stubs/gemini_stub.py,
#            answers: tests/stubs/rehearsal_responder.py), so the LLM layer (client, retries, cache,
#            verdict parsing) decides the rephrasings and every verdict.
# After each leg it hashes the judgments, the metrics (but their manifest, which holds timestamps) and the
# training rows, into benchmarks/results/hash_proof_<label>.sha256 (leg-prefixed paths). Two labels are
# compared with `diff`; equal files mean equal bytes.
set -euo pipefail
rev=${1:?commit}
label=${2:?label}
repo=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-$repo/.venv}
out="$repo/benchmarks/results"
work=$(mktemp -d "${TMPDIR:-/tmp}/rbiqa-hash.XXXXXX")
trap 'kill "${STUB_PID:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
git clone -q "$repo" "$work/repo"
cd "$work/repo"
git checkout -q "$rev"
mkdir -p data/models
cp -r "$repo/data/models/smollm2_135m" data/models/
export PATH="$venv/bin:$PATH"
export PYTHONPATH="$work/repo/src"
: >"$out/hash_proof_$label.sha256"

record() { # leg
  {
    sha256sum data/processed/train.jsonl
    sha256sum results/*/judgments/*.jsonl
    ls results/metrics/*.json | grep -v manifest.json | xargs sha256sum
  } | sed "s|^\([0-9a-f]*\)  |\1  $1/|" >>"$out/hash_proof_$label.sha256"
}

start=$SECONDS
snakemake --cores all --config experiment=tiny >"$work/offline.log" 2>&1 || {
  tail -40 "$work/offline.log"
  exit 1
}
record offline
t_offline=$((SECONDS - start))

port=18766
url="http://127.0.0.1:$port"
export RBIQA_HASH_PROOF_KEY=dummy-key-not-a-secret
. "$repo/benchmarks/gemini_stub.sh"
start_gemini_stub python "$port" rehearsal "$work/stub.log"
ov=(rephrase=gemini "rephrase.base_url=$url" rephrase.model_id=gemini-stub
  rephrase.api_key_env=RBIQA_HASH_PROOF_KEY judge=gemini "judge.base_url=$url" judge.model=gemini-stub
  judge.api_key_env=RBIQA_HASH_PROOF_KEY)
llm="overrides=[$(printf '"%s",' "${ov[@]}" | sed 's/,$//')]"
start=$SECONDS
snakemake --cores all --config experiment=tiny "$llm" >"$work/llm.log" 2>&1 || {
  tail -40 "$work/llm.log"
  exit 1
}
record llm
t_llm=$((SECONDS - start))
echo "hash proof of $rev ($label): offline leg ${t_offline}s, llm leg ${t_llm}s; $(wc -l <"$out/hash_proof_$label.sha256") files hashed"
echo "$rev offline ${t_offline}s llm ${t_llm}s" >"$out/hash_proof_$label.info"
