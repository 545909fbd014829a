#!/usr/bin/env bash
# Does scraping /metrics every 100 ms slow training down? Trains the quickstart model
# with and without a scraper (alternating, to spread machine noise over both) and prints
# the median step time of each. The scraper is one curl process issuing 10 requests a
# second (--rate), like a Prometheus server would, without a process start per scrape.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh xlhost model_original >/dev/null
[[ -f data/synth/train.jsonl ]] || build/bin/xlhost data synth --out data/synth >/dev/null
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
steps=${STEPS:-150}

median_step() {  # median step_s of steps 21.. in a train.log
  grep -o '"step_s":[0-9.e+-]*' "$1" | tail -n +21 | cut -d: -f2 | sort -g |
    awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'
}

run() {  # run ID SCRAPE
  local id=$1 scrape=$2 scraper=""
  build/bin/xlhost run -p build/plugins/model_original.so -c configs/quickstart.json --set run.out_dir="$out" \
    --set experiment.id="$id" --set train.max_steps="$steps" --set train.log_interval=1 --set eval.interval=0 \
    --set train.checkpoint_interval=0 --set generate.samples=0 --metrics-listen 127.0.0.1:0 >"$out/$id.log" 2>&1 &
  local pid=$!
  if [[ $scrape == yes ]]; then
    local port=""
    for _ in $(seq 1 100); do
      port=$(grep -o '^metrics: http://127.0.0.1:[0-9]*' "$out/$id.log" | grep -o '[0-9]*$' || true)
      [[ -n $port ]] && break
      sleep 0.1
    done
    curl -s -o /dev/null --rate 10/s "http://127.0.0.1:$port/metrics?scrape=[1-100000]" &
    scraper=$!
  fi
  wait $pid
  [[ -n $scraper ]] && kill $scraper && wait $scraper 2>/dev/null || true
  median_step "$out/$id/train.log"
}

declare -a off on
for round in 1 2; do
  off+=("$(run "off$round" no)")
  on+=("$(run "on$round" yes)")
done
printf "%-28s %s\n" "run" "median step time (s)"
for i in 0 1; do printf "%-28s %s\n" "no scraper, round $((i+1))" "${off[$i]}" "scrape every 100 ms, round $((i+1))" "${on[$i]}"; done
awk -v a="${off[0]}" -v b="${off[1]}" -v c="${on[0]}" -v d="${on[1]}" \
  'BEGIN { base = (a + b) / 2; with = (c + d) / 2; printf "change with scraping: %+.2f%%\n", 100 * (with - base) / base }'
