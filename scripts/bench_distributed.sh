#!/usr/bin/env bash
# Data-parallel throughput on this machine: the quickstart model at the same global batch
# (32 sequences of 128 tokens per step) on 1 process and on 2 ranks (Gloo on loopback,
# launched by torchrun through `xlhost run --nproc 2`), and the all-reduce time per step.
# Timed runs, not tests.
#   scripts/bench_distributed.sh [STEPS]     (default 40)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-40}
scripts/build.sh xlhost model_original >/dev/null
[[ -f data/synth/train.jsonl ]] || build/bin/xlhost data synth --out data/synth >/dev/null
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

measure() {  # measure NAME ID SETTINGS... [-- ARGS]
  local name=$1 id=$2; shift 2
  local sets=() extra=()
  while (($#)) && [[ $1 != -- ]]; do sets+=(--set "$1"); shift; done
  (($#)) && shift && extra=("$@")
  local log
  log=$(build/bin/xlhost run -p build/plugins/model_original.so -c configs/quickstart.json --set train.max_steps="$steps" \
        --set run.out_dir="$out" --set experiment.id="$id" --set eval.interval=0 --set eval.max_batches=1 \
        --set eval.facts_path= --set generate.samples=0 --set train.log_interval=1 --set metrics.enabled=false \
        "${sets[@]}" "${extra[@]}" 2>&1)
  local tps
  tps=$(grep -o '"tokens_per_s":[0-9.e+]*' "$out/$id/train.log" | tail -n +2 | cut -d: -f2 |
        awk '{s+=$1; n++} END {if (n) printf "%.0f", s/n; else print "?"}')
  local comm
  comm=$(grep -o 'all-reduce *[0-9.]* ms per step ([0-9.]*% of the wall time)' <<<"$log" | sed 's/all-reduce *//' || true)
  printf "%-52s %10s   %s\n" "$name" "$tps" "${comm:--}"
}

printf "%-52s %10s   %s\n" "run (global batch 32 x 128 tokens per step)" "tokens/s" "all-reduce per step"
measure "1 process, batch 32, 2 threads" one train.batch_size=32 train.threads=2
measure "1 process, batch 16 x accumulation 2, 2 threads" accumulated train.batch_size=16 train.accumulation_steps=2 train.threads=2
measure "2 ranks (gloo), batch 16 each, 1 thread each" two train.batch_size=16 -- --nproc 2
