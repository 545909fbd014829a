#!/usr/bin/env bash
# xlhost's training step against the PyTorch step it replaces (bench/pytorch_train.py: the
# tests' MiniMind reference, AdamW, clipping; eager and torch.compile), the same torch wheel,
# 2 threads, alternated in one run so that both see the same machine. Timed runs, not tests.
#   scripts/bench_vs_pytorch.sh [ROUNDS]     default 2 rounds; prints tokens/s per round
#   ONLY=memory scripts/bench_vs_pytorch.sh  the cases whose name contains "memory"
#   DTYPES=float32 scripts/bench_vs_pytorch.sh  one dtype (default: float32 bfloat16)
#   ISA=avx2 scripts/bench_vs_pytorch.sh     a CPU without AVX-512, emulated: oneDNN and ATen held
#       to AVX2 for both sides (ONEDNN_MAX_CPU_ISA, ATEN_CPU_CAPABILITY; torch.compile's
#       generated code may still use more) and xlhost from build-avx2/, its SDK loops built for
#       AVX2 alone (XLHOST_CPU_VARIANT). MKL picks its kernels from the CPU itself.
# xlhost runs with the launcher's policy for a lone run (OMP_WAIT_POLICY=ACTIVE) and, for
# comparison, PASSIVE; PyTorch with its default (GNU OpenMP's), and ACTIVE.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}
build=build cmake_args=""
case ${ISA:-} in
  "") ;;
  avx2)
    build=build-avx2 cmake_args="-DXLHOST_BUILD_TESTS=OFF -DXLHOST_CPU_VARIANT=avx2"
    export ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 ;;
  *) echo "scripts/bench_vs_pytorch.sh: ISA=$ISA: only avx2 is known" >&2; exit 2 ;;
esac
XLHOST_BUILD_DIR=$build XLHOST_CMAKE_ARGS=$cmake_args scripts/build.sh xlhost model_original model_memory >/dev/null
[[ -f data/synth/train.jsonl ]] || $build/bin/xlhost data synth --out data/synth >/dev/null
python=$(scripts/python-env.sh)/bin/python
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
grep -m1 "model name" /proc/cpuinfo | sed 's/.*: /cpu: /'
echo "flags: $(grep -o -w -m1 -E 'avx512f|avx512_bf16|amx_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')${ISA:+(held to $ISA)}"

xlhost() {  # xlhost ENV CONFIG STEPS SETTINGS... -> mean tokens/s of the logged steps after the first two
  local env=$1 config=$2 steps=$3; shift 3
  local sets=()
  for s in "$@"; do sets+=(--set "$s"); done
  env $env $build/bin/xlhost run -p "$build/plugins/$PLUGIN.so" -c "$config" --set train.max_steps="$steps" \
    --set run.out_dir="$out" --set experiment.id=bench --overwrite --set eval.interval=0 --set eval.max_batches=1 \
    --set generate.samples=0 --set train.log_interval=1 --set metrics.enabled=false --set train.threads=2 \
    "${sets[@]}" >/dev/null 2>&1
  grep -o '"tokens_per_s":[0-9.e+]*' "$out/bench/train.log" | tail -n +3 | cut -d: -f2 |
    awk '{s+=$1; n++} END {if (n) printf "%.0f", s/n; else print "?"}'
}

pytorch() {  # pytorch ENV ARGS...
  local env=$1; shift
  env $env "$python" bench/pytorch_train.py --threads 2 "$@" 2>/dev/null || echo "?"
}

row() { printf "%-46s" "$1"; shift; for v in "$@"; do printf " %8s" "$v"; done; echo; }

ratio() {  # ratio A1 A2 B1 B2 -> the better of A over the better of B, each in its best environment
  awk -v a1="$1" -v a2="$2" -v b1="$3" -v b2="$4" 'BEGIN {
    a1 += 0; a2 += 0; b1 += 0; b2 += 0  # a failed run ("?") counts as 0
    a = (a1 > a2 ? a1 : a2); b = (b1 > b2 ? b1 : b2)
    if (a > 0 && b > 0) printf "%.2f", a / b; else printf "?" }'
}

bench_case() {  # NAME CONFIG STEPS PYTORCH_SHAPE... (xlhost settings come from the config)
  local name=$1 config=$2 steps=$3; shift 3
  [[ $name == *"${ONLY:-}"* ]] || return 0
  local shape=("$@")
  for dtype in ${DTYPES:-float32 bfloat16}; do
    local bf16=() label=fp32
    [[ $dtype == bfloat16 ]] && bf16=(--bf16) && label="bf16 (autocast)"
    for ((r = 1; r <= rounds; r++)); do
      local v=(
        "$(xlhost "" "$config" "$steps" train.dtype=$dtype "${XLHOST_SETS[@]}")"
        "$(xlhost OMP_WAIT_POLICY=PASSIVE "$config" "$steps" train.dtype=$dtype "${XLHOST_SETS[@]}")"
        "$(pytorch "" "${shape[@]}" --steps "$steps" "${bf16[@]}")"
        "$(pytorch OMP_WAIT_POLICY=ACTIVE "${shape[@]}" --steps "$steps" "${bf16[@]}")"
        "$(pytorch "" "${shape[@]}" --steps "$steps" --compile "${bf16[@]}")"
        "$(pytorch OMP_WAIT_POLICY=ACTIVE "${shape[@]}" --steps "$steps" --compile "${bf16[@]}")")
      row "$name, $label, round $r" "${v[@]}" "$(ratio "${v[0]}" "${v[1]}" "${v[2]}" "${v[3]}")x" \
        "$(ratio "${v[0]}" "${v[1]}" "${v[4]}" "${v[5]}")x"
    done
  done
}

echo "tokens/s          xlhost: default, PASSIVE | PyTorch eager: default, ACTIVE | torch.compile: default, ACTIVE | xlhost/eager, xlhost/compile (best environment of each)"
PLUGIN=model_original XLHOST_SETS=()
bench_case "quickstart model (0.8M, 16x128)" configs/quickstart.json 30 \
  --dim 128 --layers 4 --heads 4 --kv-heads 2 --vocab 259 --batch 16 --seq 128
XLHOST_SETS=(train.batch_size=2 train.accumulation_steps=1)
bench_case "26M baseline (2x512)" configs/baseline_1.4.0.json 8 \
  --dim 512 --layers 8 --heads 32 --kv-heads 8 --vocab 6400 --batch 2 --seq 512
# model_memory against memory_model_reference.py (the same 1.4.8 fusion, dropouts, balance loss).
PLUGIN=model_memory XLHOST_SETS=()
bench_case "quickstart memory model (0.5M, 16x128)" configs/quickstart_memory.json 20 \
  --dim 128 --layers 4 --heads 4 --kv-heads 2 --vocab 259 --batch 16 --seq 128 \
  --memory 1024,64,64,4,4,causal,score_weighted
XLHOST_SETS=(model.n_layers=4 model.knowledge_num=65536 train.accumulation_steps=1 eval.max_facts=1)
bench_case "model_memory 1.4.8, 4x512, 64k rows (2x512)" configs/memory_1.4.8.json 6 \
  --dim 512 --layers 4 --heads 32 --kv-heads 8 --vocab 6400 --batch 2 --seq 512 \
  --memory 65536,8,128,16,8,none,faithful
