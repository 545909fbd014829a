#!/usr/bin/env bash
# Step time of each architecture relative to model_original at the same width, depth,
# sequence length and batch (timed training runs, median of the steps after warm-up), and
# the arithmetic behind it: the plugin's training FLOPs per token (results.flops_per_token)
# and the FLOP/s achieved at the median step, against model_original's.
#   DIM=128 LAYERS=4 SEQ=128 BATCH=8 STEPS=12 scripts/bench_variants.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh xlhost model_original model model_no_feed model_memory >/dev/null
[[ -f data/synth/train.jsonl ]] || build/bin/xlhost data synth --out data/synth >/dev/null
dim=${DIM:-128} layers=${LAYERS:-4} seq=${SEQ:-128} batch=${BATCH:-8} steps=${STEPS:-12}
heads=$((dim / 32)); ((heads >= 2)) || heads=2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cat > "$out/exp.json" <<JSON
{"experiment": {"id": "bench"},
 "data": {"train_path": "data/synth/train.jsonl", "val_path": "", "seq_len": $seq,
          "knowledge_path": "data/synth/knowledge.txt"},
 "train": {"batch_size": $batch, "max_steps": $steps, "log_interval": 1, "lr": 1e-3},
 "metrics": {"enabled": false}, "run": {"out_dir": "$out"}}
JSON
common=(--set model.dim=$dim --set model.n_layers=$layers --set model.n_heads=$heads
        --set model.n_kv_heads=$((heads / 2 > 0 ? heads / 2 : 1)) --set model.vocab_size=259)
memory=(--set model.knowledge_num=1024 --set model.knowledge_length=48 --set model.knowledge_dim=64)

median_step() {
  grep -o '"step_s":[0-9.e+-]*' "$out/bench/train.log" | tail -n +3 | cut -d: -f2 | sort -g |
    awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'
}
base="" base_rate=""
printf "%-46s %10s %8s %12s %9s %8s\n" "variant (dim $dim, $layers layers, ${batch}x$seq)" "step (s)" "vs base" \
  "MFLOP/token" "GFLOP/s" "vs base"
bench() {  # bench LABEL PLUGIN ARGS...
  local label=$1 plugin=$2; shift 2
  rm -rf "$out/bench"
  build/bin/xlhost run -p "build/plugins/$plugin.so" -c "$out/exp.json" "${common[@]}" "$@" >"$out/log" 2>&1 ||
    { echo "$label failed:"; tail -3 "$out/log"; return; }
  local t flops rate
  t=$(median_step)
  flops=$(grep -o '"flops_per_token": [0-9.e+]*' "$out/bench/record.json" | cut -d' ' -f2)
  rate=$(awk -v f="$flops" -v t="$t" -v n=$((batch * seq)) 'BEGIN { print f * n / t / 1e9 }')
  [[ -n $base ]] || base=$t base_rate=$rate
  printf "%-46s %10.4f %7.2fx %12.2f %9.2f %7.2fx\n" "$label" "$t" "$(awk -v a="$t" -v b="$base" 'BEGIN { print a / b }')" \
    "$(awk -v f="$flops" 'BEGIN { print f / 1e6 }')" "$rate" "$(awk -v a="$rate" -v b="$base_rate" 'BEGIN { print a / b }')"
}
bench "model_original" model_original
bench "model (sequence_mean, faithful)" model "${memory[@]}" --set model.cross_attn_heads=$heads
bench "model (causal_prefix_mean)" model "${memory[@]}" --set model.cross_attn_heads=$heads \
  --set model.retrieval_pooling=causal_prefix_mean
bench "model_no_feed (sequence_mean)" model_no_feed "${memory[@]}" --set model.cross_attn_heads=$heads
bench "model_memory 1.4.8 cross-attn, S=4 (faithful)" model_memory "${memory[@]}" --set model.num_selected=4 \
  --set model.fusion_heads=$heads
bench "model_memory 1.4.8 cross-attn, S=4, causal" model_memory "${memory[@]}" --set model.num_selected=4 \
  --set model.fusion_heads=$heads --set model.fusion_mask=causal
bench "model_memory 1.4.10 gated MLP, C=16" model_memory "${memory[@]}" --set model.fusion=gated_mlp \
  --set model.num_candidates=16
