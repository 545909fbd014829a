#!/usr/bin/env bash
# From a fresh clone: install what is missing, build, write the synthetic corpus, train the
# quickstart baseline (tiny model_original) and the quickstart memory model (tiny
# model_memory, causal cross-attention fusion, bank initialised from the corpus' facts) on
# the same data and step budget, and print them side by side.
#   scripts/quickstart.sh               both runs (about 1 + 5 minutes on 2 cores)
#   scripts/quickstart.sh --baseline    the baseline alone
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh xlhost model_original model_memory
[[ -f data/synth/train.jsonl ]] || build/bin/xlhost data synth --out data/synth

build/bin/xlhost run --plugin build/plugins/model_original.so --config configs/quickstart.json
[[ ${1:-} == --baseline ]] && exit 0
build/bin/xlhost run --plugin build/plugins/model_memory.so --config configs/quickstart_memory.json

field() {  # field SUMMARY_JSON KEY
  grep -o "\"$2\": *[^,}]*" "$1" | head -1 | sed 's/.*: *//; s/"//g'
}
fmt() { [[ $2 == null || -z $2 ]] && echo "-" || printf "$1" "$2"; }
echo
echo "quickstart comparison (same data, 300 steps of 16x128 tokens):"
printf "  %-16s %10s %10s %10s %12s %12s %10s\n" run params "val loss" perplexity "fact recall" "(seen/new)" tokens/s
for id in 0.0.1 0.1.1; do
  s=out/$id/summary.json
  recall=$(field "$s" fact_recall)
  printf "  %-16s %10s %10s %10s %12s %12s %10s\n" "$(field "$s" plugin)" "$(field "$s" parameters)" \
    "$(fmt %.4f "$(field "$s" val_loss)")" "$(fmt %.3f "$(field "$s" val_perplexity)")" \
    "$(fmt %.1f%% "$(awk -v r="$recall" 'BEGIN { if (r != "null") print 100 * r; else print "null" }')")" \
    "$(awk -v a="$(field "$s" fact_recall_seen)" -v b="$(field "$s" fact_recall_unseen)" \
         'BEGIN { if (a == "null") print "-"; else printf "%.0f%%/%.0f%%", 100 * a, 100 * b }')" \
    "$(fmt %.0f "$(field "$s" tokens_per_second)")"
done
