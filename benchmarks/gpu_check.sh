#!/usr/bin/env bash
# gpu_check.sh: the paper's training recipe on a lent GPU machine, in one call (issue #16, part 2).
#
# WHAT IT RUNS (GPU leg, one `run` of the device tool; budget 480 s, every sub-step under `timeout`)
#   1. install   the wheels carried in benchmarks/gpu_carry/wheels/ (offline: pip --no-index --no-deps
#                --target /tmp/gpu_check_site, put first on PYTHONPATH), then rbiqa itself with
#                `pip install --no-deps --no-build-isolation -e .` (pyproject pins the CPU torch; the
#                machine's own torch 2.11+cu130 stays). Falls back to PYTHONPATH=src if that fails.
#   2. info      nvidia-smi, torch/CUDA/device, package versions, bitsandbytes' native library; a 4-bit
#                quantize on the GPU decides whether bitsandbytes works at all.
#   3. smoke     the real train stage (rbiqa.train.run.train_arm, experiment=paper arm=ft_k3) on a tiny
#                Qwen2 (same architecture, tiny sizes) on CUDA, a few steps: fails fast, in seconds. If it
#                fails, it is retried with Liger off, then also with the model's own loss head; the first
#                set that works is used below and recorded (overrides). No bitsandbytes: 4-bit and
#                the paged optimizer are switched off and recorded as unavailable.
#   4. train     the same train stage on a shape-faithful synthetic Qwen2.5-3B (random init from the config
#                values in benchmarks/train_throughput.py, no download), paper settings (bf16, paged 8-bit
#                AdamW, gradient checkpointing, TRL's fused LM head, Liger, flash-attention where installed,
#                4-bit NF4 QLoRA, batch 8 x 4), on tiny training data written from data/sample.
#   5. bench     benchmarks/train_throughput.py --synthetic qwen2_5_3b: ours (the train stage's trainer)
#                against naive HF Trainer + PEFT on the same 4-bit base, rows and optimizer, one run.
#   6. summary   $OUT/gpu_check.json: tokens/s, peak VRAM, MFU (model FLOPs per token x tokens/s over the
#                H200's dense bf16 peak, 989.5 TFLOP/s, the datasheet value H200.md quotes as "about 990";
#                KINDS.md's measured 788 TFLOP/s matmul rate is recorded beside it), the ratio ours/naive,
#                and which kernels ran (benchmarks/kernel_probe.py: attention/fused-head call counters, the
#                model and optimizer as trained, a torch.profiler trace of one step). A kernel that is not
#                installed there (flash-attn has no wheel on PyPI) is recorded, never fatal.
#   $OUT gets at most 7 files: gpu_check.json, gpu_check.log (everything printed), nvidia_smi.csv (memory
#   and clocks each second), info.json, train_tiny.json, train_qwen2_5_3b.json, throughput_qwen2_5_3b.json.
#
# CPU LEG (here, first: `bash benchmarks/gpu_check.sh --cpu-only`, also chosen when no CUDA is visible)
#   The same steps through the same code on the tiny Qwen2 on CPU (a 3B model does not train on 2 cores):
#   info, data, build, train stage, then train_throughput.py ours vs naive. To stay on the GPU's code
#   path it keeps the base in bitsandbytes NF4 (train.cpu_weights=4bit) and turns on the CUDA choices that
#   also run on CPU (fused loss head, gradient checkpointing, padding-free batches, bitsandbytes' paged
#   8-bit AdamW, which pages nothing on CPU). Paging, Liger, bf16 autocast, Triton kernels and flash-
#   attention need CUDA and are recorded as not run. ~3 min on 2 cores.
#   OUT defaults to a new temp dir.
#
# PREPARATION (here, with PyPI): `bash benchmarks/gpu_check.sh --fetch-wheels`
#   Downloads cp312 manylinux x86_64 wheels of what the GPU image lacks (KINDS.md's package list): trl,
#   bitsandbytes, liger-kernel, hydra-core, omegaconf, antlr4 (sdist only: a pure-Python wheel built
#   here), pydantic(-core), datasets, dill, multiprocess, diskcache; and, for parity with this repo's
#   .venv, its transformers, peft, accelerate and fsspec. Versions are the .venv's where it has them.
#   bitsandbytes' wheel is 43 MB, mostly CUDA 11/12 and ROCm libraries; it is repacked with only its
#   CUDA 13 and CPU libraries (the machine's torch is cu130). Also copies the SmolLM2 tokenizer (the
#   synthetic models' tokenizer) to benchmarks/gpu_carry/tokenizer/, checks that every wheel installs on
#   CPython 3.12 manylinux (pip --dry-run), and that the tree that travels (tracked + untracked-not-
#   ignored files + benchmarks/gpu_carry) fits in 64 MiB; if not, bitsandbytes is left out and 4-bit is
#   recorded as unavailable. benchmarks/gpu_carry/ is git-ignored. Then prints the run invocation
#   (`--print-run` prints it again):
#       run(command="bash benchmarks/gpu_check.sh --gpu", carry=["benchmarks/gpu_carry"], timeout_s=560)
#
# Options: --gpu | --cpu-only | --fetch-wheels | --print-run. Environment: OUT (results), PYTHON (the
# interpreter; default .venv/bin/python here, python3 on the GPU machine), GPU_CHECK_BUDGET_S (480 GPU,
# 900 CPU), GPU_CHECK_KEEP=1 keeps the work dir (/tmp/gpu_check.*).
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO" || exit 1
CARRY=benchmarks/gpu_carry
WHEELS=$CARRY/wheels
LIMIT_BYTES=$((64 * 1024 * 1024))
RUN_CALL='run(command="bash benchmarks/gpu_check.sh --gpu", carry=["benchmarks/gpu_carry"], timeout_s=560)'

MODE=auto
for a in "$@"; do
  case $a in
    --gpu) MODE=gpu ;;
    --cpu-only | --cpu) MODE=cpu ;;
    --fetch-wheels) MODE=fetch ;;
    --print-run) MODE=print ;;
    -h | --help)
      sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "unknown option $a (see --help)" >&2
      exit 2
      ;;
  esac
done

pick_python() {
  if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"; elif [ "$1" = cpu ] && [ -x .venv/bin/python ]; then
    echo .venv/bin/python
  elif [ -x .venv/bin/python ] && ! command -v nvidia-smi > /dev/null; then echo .venv/bin/python; else
    echo python3
  fi
}

print_run() {
  cat << EOF

== device tool invocation (GPU leg; the script's own budget is ${GPU_CHECK_BUDGET_S:-480} s) ==
$RUN_CALL
Results come back under files_at: gpu_check.json (summary), gpu_check.log, nvidia_smi.csv, info.json,
train_tiny.json, train_qwen2_5_3b.json, throughput_qwen2_5_3b.json. Give the machine back afterwards
unless rerunning at once.
EOF
}

# ---------------------------------------------------------------------------------------------------
# --fetch-wheels: the preparation step, here (PyPI reachable)
# ---------------------------------------------------------------------------------------------------
fetch_wheels() {
  local PY
  PY=$(pick_python cpu)
  local PLATS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
    --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
    --platform manylinux1_x86_64 --platform manylinux_2_31_x86_64 --platform manylinux_2_34_x86_64
    --platform manylinux_2_35_x86_64)
  local TAGS=(--only-binary=:all: --python-version 3.12 --implementation cp "${PLATS[@]}")
  # name=default version; the .venv's version wins where it has the package
  local SPECS=(
    trl=1.16.0 bitsandbytes=0.50.2 liger-kernel=0.8.5 transformers=5.24.0 peft=0.21.2
    accelerate=1.16.0 datasets=5.2.0 dill=0.4.1 multiprocess=0.70.19 fsspec=2026.9.0
    pydantic=2.14.4 pydantic-core=2.50.5 annotated-types=0.8.0 typing-inspection=0.4.5
    hydra-core=1.3.8 omegaconf=2.3.1 diskcache=5.6.3
  )
  local pins=() s name ver have
  for s in "${SPECS[@]}"; do
    name=${s%%=*}
    ver=${s#*=}
    have=$("$PY" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$name" 2> /dev/null) && ver=$have
    pins+=("$name==$ver")
  done
  local antlr
  antlr=$("$PY" -c "import importlib.metadata as m; print(m.version('antlr4-python3-runtime'))" 2> /dev/null || echo 4.9.3)
  echo "pins: ${pins[*]} antlr4-python3-runtime==$antlr"
  rm -rf "$CARRY"
  mkdir -p "$WHEELS" "$CARRY/tokenizer"
  "$PY" -m pip download -q --no-deps "${TAGS[@]}" -d "$WHEELS" "${pins[@]}" || {
    echo "pip download failed" >&2
    return 1
  }
  # hydra-core 1.3 needs antlr4 4.9.*, published as an sdist only: build its pure-Python wheel here
  "$PY" -m pip wheel -q --no-deps --no-binary=:all: -w "$WHEELS" "antlr4-python3-runtime==$antlr" || {
    echo "antlr4 wheel build failed" >&2
    return 1
  }
  # flash-attn: optional; PyPI has no wheel of it (sdist only, built against a local CUDA toolkit)
  local fa_note="no cp312 manylinux wheel on PyPI (sdist only): sdpa is used"
  if "$PY" -m pip download -q --no-deps "${TAGS[@]}" -d "$WHEELS" flash-attn > /dev/null 2>&1; then
    fa_note="wheel carried"
  fi
  echo "flash-attn: $fa_note"
  # tokenizer of the synthetic models
  local T=data/models/smollm2_135m f
  [ -f "$T/tokenizer.json" ] || {
    echo "no tokenizer at $T: run 'make model' (python -m rbiqa.fetch_model) first" >&2
    return 1
  }
  for f in tokenizer.json tokenizer_config.json chat_template.jinja special_tokens_map.json; do
    [ -f "$T/$f" ] && cp "$T/$f" "$CARRY/tokenizer/"
  done
  # slim bitsandbytes, check tags, sizes, manifest
  "$PY" - "$CARRY" "$LIMIT_BYTES" "$fa_note" << 'PY' || return 1
import hashlib, json, os, subprocess, sys, zipfile, base64
from pathlib import Path

carry, limit, fa_note = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
wheels = carry / "wheels"

def sha(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()

notes = {"flash-attn": fa_note}
# bitsandbytes: keep the CUDA 13 builds (torch 2.11+cu130 there) and the CPU one, drop the rest
for whl in wheels.glob("bitsandbytes-*.whl"):
    orig_sha, orig_size = sha(whl), whl.stat().st_size
    keep = lambda n: not (n.startswith("bitsandbytes/libbitsandbytes_") and not any(
        n.endswith(s) for s in ("_cuda130.so", "_cuda132.so", "_cpu.so")))
    tmp = whl.with_suffix(".tmp")
    with zipfile.ZipFile(whl) as zin, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zout:
        record = None
        dropped = []
        for item in zin.infolist():
            if item.filename.endswith(".dist-info/RECORD"):
                record = item
                continue
            if not keep(item.filename):
                dropped.append(item.filename)
                continue
            zout.writestr(item, zin.read(item.filename))
        lines = [l for l in zin.read(record.filename).decode().splitlines()
                 if l and l.split(",")[0] not in dropped]
        zout.writestr(record, "\n".join(lines) + "\n")
    tmp.replace(whl)
    notes["bitsandbytes"] = {
        "repacked": f"dropped {len(dropped)} native libraries (CUDA 11/12, ROCm, XPU); kept CUDA 13.0/13.2 and CPU",
        "pypi_sha256": orig_sha, "pypi_bytes": orig_size, "slim_sha256": sha(whl), "slim_bytes": whl.stat().st_size,
    }

def tree_bytes():
    def ls(*a):
        out = subprocess.run(["git", "ls-files", "-z", *a], capture_output=True, check=True).stdout
        return [p for p in out.decode().split("\0") if p]
    files = set(ls()) | set(ls("--others", "--exclude-standard"))
    tree = sum(os.path.getsize(p) for p in files if os.path.isfile(p))
    c = sum(p.stat().st_size for p in carry.rglob("*") if p.is_file())
    return tree, c

tree, c = tree_bytes()
if tree + c > limit:
    for whl in wheels.glob("bitsandbytes-*.whl"):
        whl.unlink()
        notes["bitsandbytes"] = f"left out: the tree would be {(tree + c) / 2**20:.1f} MiB > 64 MiB; 4-bit unavailable"
    tree, c = tree_bytes()
# every wheel installs on CPython 3.12 manylinux x86_64 (tags only; no dependency resolution)
plats = [a for p in ("manylinux_2_28_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
                     "manylinux2014_x86_64") for a in ("--platform", p)]
whls = sorted(str(p) for p in wheels.glob("*.whl"))
r = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "-q", "--no-index", "--no-deps",
                    "--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp", *plats,
                    "--target", str(carry / ".dry"), *whls], capture_output=True, text=True)
import shutil
shutil.rmtree(carry / ".dry", ignore_errors=True)
if r.returncode:
    print(r.stdout, r.stderr, file=sys.stderr)
    sys.exit("a carried wheel does not install on cp312 manylinux x86_64")
listing = [{"file": Path(w).name, "bytes": os.path.getsize(w), "sha256": sha(Path(w))} for w in whls]
manifest = {
    "wheels": listing,
    "wheels_bytes": sum(x["bytes"] for x in listing),
    "carry_bytes": c,
    "tree_bytes": tree,
    "total_bytes": tree + c,
    "limit_bytes": limit,
    "fits": tree + c <= limit,
    "notes": notes,
}
(carry / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
for x in listing:
    print(f"  {x['bytes'] / 2**20:7.2f} MiB  {x['file']}")
print(f"wheels {manifest['wheels_bytes'] / 2**20:.2f} MiB; carry {c / 2**20:.2f} MiB (with the tokenizer); "
      f"tracked+untracked tree {tree / 2**20:.2f} MiB; total {(tree + c) / 2**20:.2f} MiB of 64 MiB")
for k, v in notes.items():
    print(f"  {k}: {v}")
if not manifest["fits"]:
    sys.exit("the tree that travels is over 64 MiB even without bitsandbytes")
PY
  grep -qxF '/benchmarks/gpu_carry/' .gitignore || echo "note: add /benchmarks/gpu_carry/ to .gitignore" >&2
  print_run
}

# ---------------------------------------------------------------------------------------------------
# the check itself (cpu or gpu)
# ---------------------------------------------------------------------------------------------------
WORK=""
SMI_PID=""
TEE_PID=""
START=$SECONDS
BUDGET=0

# step NAME CAP CMD...: run CMD under `timeout`, capped by what is left of the budget (RESERVE kept for
# the summary); one line per step in $WORK/steps.tsv: name rc seconds limit status
RESERVE=25
step() {
  local name=$1 cap=$2
  shift 2
  local left=$((BUDGET - (SECONDS - START) - RESERVE))
  local limit=$((cap < left ? cap : left))
  if [ "$limit" -lt 15 ]; then
    echo "== [$name] skipped: ${left}s of the budget left"
    printf '%s\t0\t0\t%s\tskipped\n' "$name" "$limit" >> "$WORK/steps.tsv"
    return 99
  fi
  echo
  echo "== [$name] (limit ${limit}s, $((SECONDS - START))s elapsed) $*"
  local t0=$SECONDS rc status
  timeout -k 10 "$limit" "$@"
  rc=$?
  status=ok
  [ "$rc" -ne 0 ] && status=failed
  [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && status=timeout
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t0))" "$limit" "$status" >> "$WORK/steps.tsv"
  echo "== [$name] $status (rc $rc, $((SECONDS - t0))s)"
  return "$rc"
}

finish() {
  local rc=$?
  [ -n "$SMI_PID" ] && kill "$SMI_PID" 2> /dev/null
  if [ -n "$WORK" ] && [ -d "$WORK" ]; then
    timeout 30 "$PY" benchmarks/gpu_check.py summarize --work "$WORK" --out "$OUT/gpu_check.json" --mode "$MODE"
    local f
    for f in info train_tiny train_qwen2_5_3b throughput_tiny throughput_qwen2_5_3b; do
      [ -f "$WORK/$f.json" ] && cp "$WORK/$f.json" "$OUT/"
    done
    [ "${GPU_CHECK_KEEP:-0}" = 1 ] || rm -rf "$WORK"
  fi
  echo "total ${SECONDS}s; results in $OUT"
  # let tee write the last lines before the script returns (the device tool ends what is left running)
  if [ -n "$TEE_PID" ]; then
    exec 1>&3 2>&4
    wait "$TEE_PID" 2> /dev/null
  fi
  if [ -f "$OUT/gpu_check.json" ] && grep -q '"ok": true' "$OUT/gpu_check.json"; then exit 0; fi
  exit $((rc ? rc : 1))
}

check() {
  PY=$(pick_python "$MODE")
  OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/gpu_check_out.XXXXXX")}
  mkdir -p "$OUT"
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
  exec 3>&1 4>&2 > >(tee -a "$OUT/gpu_check.log") 2>&1
  TEE_PID=$!
  trap finish EXIT
  export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    HF_DATASETS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 HF_HOME="$WORK/hf" PIP_DISABLE_PIP_VERSION_CHECK=1
  echo "gpu_check: mode $MODE, python $PY, repo $REPO, out $OUT, work $WORK, $(date -u +%FT%TZ)"
  local TOK=$CARRY/tokenizer
  [ -f "$TOK/tokenizer.json" ] || TOK=data/models/smollm2_135m
  [ -f "$TOK/tokenizer.json" ] || {
    echo "no tokenizer: run 'bash benchmarks/gpu_check.sh --fetch-wheels' (or make model) first"
    exit 1
  }
  local G=benchmarks/gpu_check.py TINY="$WORK/models/qwen2_tiny" BIG="$WORK/models/qwen2_5_3b"
  local FB=() # kernel fallback overrides, from the smoke ladder (GPU) or the CPU mirror of the GPU path

  if [ "$MODE" = gpu ]; then
    BUDGET=${GPU_CHECK_BUDGET_S:-480}
    nvidia-smi --query-gpu=timestamp,memory.used,memory.total,utilization.gpu,clocks.sm,power.draw \
      --format=csv -lms 1000 > "$OUT/nvidia_smi.csv" 2>&1 &
    SMI_PID=$!
    # 1. install (in this shell: PYTHONPATH must reach every later step)
    local SITE=/tmp/gpu_check_site how
    if [ -d "$WHEELS" ]; then
      step install_wheels 120 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --upgrade --target "$SITE" "$WHEELS"/*.whl
      export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
    else
      echo "no $WHEELS: run --fetch-wheels here first and carry benchmarks/gpu_carry"
    fi
    if step install_rbiqa 90 "$PY" -m pip install -q --no-index --no-deps --no-build-isolation -e .; then
      how="pip install --no-deps --no-build-isolation -e ."
    else
      export PYTHONPATH="$REPO/src:$PYTHONPATH"
      how="editable install failed: PYTHONPATH=src"
    fi
    echo "wheels: $(cd "$WHEELS" 2> /dev/null && echo *.whl); rbiqa: $how" > "$WORK/install.txt"
    timeout 60 "$PY" -m pip check 2>&1 | head -30
    # 2. device
    nvidia-smi
    step info 60 "$PY" $G info --out "$WORK/info.json"
    if ! timeout 90 "$PY" -c "import torch, bitsandbytes.functional as F
F.quantize_4bit(torch.randn(256, 256, device='cuda', dtype=torch.bfloat16), quant_type='nf4')
print('bitsandbytes 4-bit on cuda: ok')"; then
      echo "bitsandbytes does not work here: 4-bit and the paged optimizer are off (recorded)"
      FB+=(train.quant.load_in_4bit=false train.optim.cuda=adamw_torch)
    fi
  else
    BUDGET=${GPU_CHECK_BUDGET_S:-900}
    export CUDA_VISIBLE_DEVICES=""
    # the GPU's choices that also run on CPU: NF4 storage, fused loss head, checkpointing, padding-free
    FB+=(train.cpu_weights=4bit train.loss_head.cpu=fused train.gradient_checkpointing.cpu=true
      train.padding_free.cpu=true train.optim.cpu=paged_adamw_8bit)
    echo "${FB[*]}" > "$WORK/overrides.txt"
    step info 60 "$PY" $G info --out "$WORK/info.json"
  fi

  step data 60 "$PY" $G data --out "$WORK/data" || exit 1
  step build_tiny 120 "$PY" $G build --name qwen2_tiny --dest "$TINY" --tokenizer-dir "$TOK" || exit 1
  local tiny=(--model-dir "$TINY" --name qwen2_tiny --data "$WORK/data" --steps 4 --eval-steps 2
    --eval-rows 4 --batch 4 --accum 2)

  if [ "$MODE" = cpu ]; then
    step train_tiny 400 "$PY" $G train "${tiny[@]}" --work "$WORK/t_tiny" --out "$WORK/train_tiny.json" \
      "${FB[@]/#/--override=}"
    step throughput_tiny 400 "$PY" benchmarks/train_throughput.py --synthetic qwen2_tiny \
      --synthetic-dir "$TINY" --tokenizer-dir "$TOK" --experiment paper --steps 4 --warmup 2 --batch 4 \
      --rows 64 --threads 2 --out "$WORK/throughput_tiny.json" "${FB[@]/#/--override=}"
    return
  fi

  # 3. smoke: the tiny model on CUDA, with a fallback ladder for kernels that are installed but break
  local ladder=("" "train.use_liger_kernel=never" "train.use_liger_kernel=never train.loss_head.cuda=full")
  local i rung ok=0 extra
  for i in 0 1 2; do
    rung=${ladder[$i]}
    read -r -a extra <<< "$rung"
    [ "$i" -gt 0 ] && [ $((BUDGET - (SECONDS - START))) -lt 330 ] && break
    if step "smoke_tiny_$i" 120 "$PY" $G train "${tiny[@]}" --work "$WORK/t_tiny_$i" \
      --out "$WORK/train_tiny.json" "${FB[@]/#/--override=}" "${extra[@]/#/--override=}"; then
      ok=1
      FB+=("${extra[@]}")
      break
    fi
  done
  echo "${FB[*]:-none}" > "$WORK/overrides.txt"
  if [ "$ok" = 0 ]; then
    echo "the tiny model does not train on CUDA with any kernel set: the 3B legs are skipped"
    exit 1
  fi
  # 4. the train stage on the synthetic Qwen2.5-3B
  step build_3b 150 "$PY" $G build --name qwen2_5_3b --dest "$BIG" --tokenizer-dir "$TOK" || exit 1
  step train_3b 170 "$PY" $G train --model-dir "$BIG" --name qwen2_5_3b --data "$WORK/data" --steps 5 \
    --eval-steps 5 --eval-rows 8 --work "$WORK/t_3b" --out "$WORK/train_qwen2_5_3b.json" "${FB[@]/#/--override=}"
  # 5. ours vs naive, one run
  step throughput_3b 230 "$PY" benchmarks/train_throughput.py --synthetic qwen2_5_3b --synthetic-dir "$BIG" \
    --tokenizer-dir "$TOK" --experiment paper --steps 16 --warmup 4 --batch 8 --rows 512 \
    --out "$WORK/throughput_qwen2_5_3b.json" "${FB[@]/#/--override=}"
}

case $MODE in
  fetch) fetch_wheels ;;
  print) print_run ;;
  *)
    if [ "$MODE" = auto ]; then
      MODE=cpu
      if command -v nvidia-smi > /dev/null && "$(pick_python gpu)" -c \
        "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2> /dev/null; then MODE=gpu; fi
    fi
    check
    ;;
esac
