#!/usr/bin/env bash
# A real Prometheus server (loopback only, temporary config and data) scrapes a running
# `xlhost run`; the loss series it stores must carry the run's labels and equal the last
# loss in train.log. Every wait is bounded. Usage: prometheus_end_to_end.sh XLHOST BUILD_DIR
set -u
xlhost=$1 build=$2
work=$(mktemp -d)
xl_pid="" prom_pid=""
cleanup() {
  [[ -n $xl_pid ]] && kill -INT "$xl_pid" 2>/dev/null
  [[ -n $prom_pid ]] && kill "$prom_pid" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
fail() { echo "FAILED: $*"; echo "0 passed, 1 failed"; exit 1; }

"$xlhost" data synth --out data --entities 20 --train-docs 300 --val-docs 40 >/dev/null || fail "data synth"
cat > exp.json <<JSON
{"experiment": {"id": "0.0.7"},
 "model": {"dim": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "vocab_size": 259},
 "data": {"train_path": "data/train.jsonl", "val_path": "", "seq_len": 32},
 "train": {"batch_size": 8, "max_steps": 400, "threads": 1, "log_interval": 1}}
JSON
"$xlhost" run -p "$build/plugins/model_original.so" -c exp.json --metrics-listen 127.0.0.1:0 \
  --metrics-linger 120 >xlhost.log 2>&1 &
xl_pid=$!
for _ in $(seq 1 100); do grep -q "^metrics: http" xlhost.log && break; sleep 0.1; done
target=$(grep -o "^metrics: http://[^/]*" xlhost.log | head -1 | sed 's|metrics: http://||')
[[ -n $target ]] || fail "xlhost printed no metrics address: $(cat xlhost.log)"

cat > prometheus.yml <<YAML
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: xlhost
    static_configs:
      - targets: ['$target']
YAML
for attempt in 1 2 3 4 5; do
  port=$((20000 + RANDOM % 30000))
  prometheus --config.file=prometheus.yml --storage.tsdb.path=tsdb --web.listen-address=127.0.0.1:$port \
    >prometheus.log 2>&1 &
  prom_pid=$!
  for _ in $(seq 1 50); do
    grep -q "Server is ready to receive web requests" prometheus.log && break
    kill -0 $prom_pid 2>/dev/null || break
    sleep 0.2
  done
  grep -q "Server is ready to receive web requests" prometheus.log && break
  kill $prom_pid 2>/dev/null; wait $prom_pid 2>/dev/null; prom_pid=""
done
[[ -n $prom_pid ]] || fail "prometheus did not start: $(tail -5 prometheus.log)"

# Training ends, its last values stay exposed while xlhost lingers.
for _ in $(seq 1 600); do grep -q '"step":400,' out/0.0.7/train.log 2>/dev/null && break; sleep 0.2; done
last_loss=$(grep '"step":400,' out/0.0.7/train.log | grep -o '"loss":[^,]*' | cut -d: -f2)
[[ -n $last_loss ]] || fail "training did not reach step 400"

query='xl_train_loss{job="xlhost"}'
for _ in $(seq 1 60); do
  answer=$(promtool query instant "http://127.0.0.1:$port" "$query" 2>&1)
  value=$(grep -o '=> [^ ]*' <<<"$answer" | cut -d' ' -f2)
  if [[ -n $value ]] && awk -v a="$value" -v b="$last_loss" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-6 * (b < 0 ? -b : b)) }'; then
    break
  fi
  sleep 0.5
done
echo "prometheus: $answer"
echo "train.log:  loss $last_loss at step 400"
passed=0
for label in 'experiment="0.0.7"' 'plugin="model_original"' 'rank="0"'; do
  grep -qF "$label" <<<"$answer" || fail "label $label missing in: $answer"
  passed=$((passed + 1))
done
awk -v a="$value" -v b="$last_loss" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-6 * (b < 0 ? -b : b)) }' ||
  fail "Prometheus has loss '$value', train.log has $last_loss"
echo "$((passed + 1)) passed, 0 failed"
