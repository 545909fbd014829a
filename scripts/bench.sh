#!/usr/bin/env bash
# Training throughput on this machine, as a table. Timed runs, not tests.
#   scripts/bench.sh            training throughput (quickstart model, 26M baseline) and
#                               the cost of the metrics path (Google Benchmark)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh xlhost model_original metrics_bench >/dev/null
[[ -f data/synth/train.jsonl ]] || build/bin/xlhost data synth --out data/synth >/dev/null
xlhost=build/bin/xlhost plugin=build/plugins/model_original.so
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

measure() {  # measure NAME ENV CONFIG STEPS SETTINGS...
  local name=$1 env=$2 config=$3 steps=$4; shift 4
  local sets=()
  for s in "$@"; do sets+=(--set "$s"); done
  local log
  log=$(env $env "$xlhost" run -p "$plugin" -c "$config" --set train.max_steps="$steps" --set run.out_dir="$out" \
        --set experiment.id=bench --overwrite --set eval.interval=0 --set eval.max_batches=1 --set generate.samples=0 \
        --set train.log_interval=1 "${sets[@]}" 2>&1)
  # Steady state: mean tokens/s of the logged steps after the first (warm-up).
  local tps
  tps=$(grep -o '"tokens_per_s":[0-9.e+]*' "$out/bench/train.log" | tail -n +2 | cut -d: -f2 |
        awk '{s+=$1; n++} END {if (n) printf "%.0f", s/n; else print "?"}')
  local rss
  rss=$(grep -o 'peak memory *[0-9]* MiB' <<<"$log" | grep -o '[0-9]* MiB')
  printf "%-44s %12s %12s\n" "$name" "$tps" "$rss"
}

printf "%-44s %12s %12s\n" "run" "tokens/s" "peak RSS"
measure "quickstart (0.8M params, 16x128)" "" configs/quickstart.json 40
measure "quickstart, OMP_WAIT_POLICY=PASSIVE" "OMP_WAIT_POLICY=PASSIVE" configs/quickstart.json 40
measure "baseline 26M (batch 4x512)" "" configs/baseline_1.4.0.json 4 train.batch_size=4 train.accumulation_steps=1 eval.batch_size=4
measure "baseline 26M (batch 16x512, seed micro-batch)" "" configs/baseline_1.4.0.json 3 train.accumulation_steps=1

echo
echo "metrics path (one step's updates, one serialisation, one HTTP scrape over loopback):"
build/bin/metrics_bench --benchmark_min_time=0.5
echo "scripts/bench_metrics.sh measures training step time with and without a 10 Hz scraper."
