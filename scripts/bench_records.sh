#!/usr/bin/env bash
# Are `xlhost exp list` and `exp compare` interactive over many runs? Builds RECORDS runs
# (default 1000) of STEPS logged training steps each (default 10000) from one real tiny
# run — each a copy of its record.json with its own id, lr and results, and a train.log of
# STEPS lines — then times the commands (best of 3). `exp report` is timed too: it is the
# one command that reads the curves; so are the runs table and one curve of `exp serve`.
# A timed run, not a test.
#   scripts/bench_records.sh [RECORDS] [STEPS]
set -euo pipefail
records=${1:-1000} steps=${2:-10000}
cd "$(dirname "$0")/.."
scripts/build.sh xlhost model_original >/dev/null
xlhost=$PWD/build/bin/xlhost plugin=$PWD/build/plugins/model_original.so
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

"$xlhost" data synth --out data --entities 20 --train-docs 200 --val-docs 20 >/dev/null
cat >exp.json <<'JSON'
{"experiment": {"id": "0.0.0"},
 "model": {"dim": 32, "n_layers": 1, "n_heads": 4, "n_kv_heads": 2, "vocab_size": 259},
 "data": {"train_path": "data/train.jsonl", "val_path": "data/val.jsonl", "seq_len": 32},
 "train": {"batch_size": 2, "max_steps": 5, "log_interval": 1}}
JSON
"$xlhost" run -p "$plugin" -c exp.json --no-metrics >/dev/null 2>&1
template=$(cat out/0.0.0/record.json)
step_line=$(head -1 out/0.0.0/train.log)

start=$(date +%s.%N)
awk -v steps="$steps" -v line="$step_line" 'BEGIN {
  sub(/"step":[0-9]+/, "\"step\":%d", line); sub(/"loss":[0-9.e+-]+/, "\"loss\":%.6f", line)
  for (s = 1; s <= steps; ++s) printf line "\n", s, 5 / (1 + s / 1000.0)
}' >curve.log
for ((i = 1; i <= records; i++)); do
  id="1.$((i / 100)).$((i % 100))"
  mkdir -p "runs/$id"
  cp curve.log "runs/$id/train.log"
  lr=$(awk -v i="$i" 'BEGIN {printf "%.6f", 1e-4 * (1 + i % 7)}')
  sed -e "s/\"id\": \"0.0.0\"/\"id\": \"$id\"/g" -e "s/\"lr\": [0-9.e+-]*/\"lr\": $lr/" \
      -e "s/\"final_loss\": [0-9.e+-]*/\"final_loss\": $(awk -v i="$i" 'BEGIN {printf "%.4f", 1 + (i * 37 % 1000) / 1000}')/" \
      <<<"$template" >"runs/$id/record.json"
done
generated=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN {printf "%.0f", e - s}')
echo "generated $records records of $steps steps ($(du -sh runs | cut -f1)) in ${generated} s"

best_of_3() {  # seconds of the fastest of three runs of the command
  local best=""
  for _ in 1 2 3; do
    local s e
    s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N)
    best=$(awk -v b="$best" -v t="$(awk -v s="$s" -v e="$e" 'BEGIN {print e - s}')" 'BEGIN {print (b == "" || t < b) ? t : b}')
  done
  printf "%.3f" "$best"
}
ten_ids=$(ls runs | head -10 | tr '\n' ' ')
printf "%-52s %10s\n" "command ($records records, $steps steps each)" "seconds"
printf "%-52s %10s\n" "xlhost exp list" "$(best_of_3 "$xlhost" exp list --out runs)"
printf "%-52s %10s\n" "xlhost exp compare (2 runs)" "$(best_of_3 "$xlhost" exp compare 1.0.1 1.0.2 --out runs)"
printf "%-52s %10s\n" "xlhost exp compare (10 runs)" "$(best_of_3 "$xlhost" exp compare $ten_ids --out runs)"
printf "%-52s %10s\n" "xlhost exp report (2 runs; reads curves, gnuplot)" \
  "$(best_of_3 "$xlhost" exp report 1.0.1 1.0.2 --out runs --dest report)"
printf "%-52s %10s\n" "xlhost --help (process start, for reference)" "$(best_of_3 "$xlhost" --help)"

# The dashboard's answers over the same records (curl's own start included: an upper bound).
"$xlhost" exp serve --listen 127.0.0.1:0 --out runs >serve.log &
serve=$!
trap 'kill $serve 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do grep -q http serve.log && break; sleep 0.1; done
url=$(grep -o 'http://[^ ]*/' serve.log)
printf "%-52s %10s\n" "exp serve: GET /api/runs (the runs table)" "$(best_of_3 curl -sf "${url}api/runs")"
printf "%-52s %10s\n" "exp serve: GET /api/curves (one run, $steps steps)" "$(best_of_3 curl -sf "${url}api/curves?id=1.0.1")"
