#!/usr/bin/env bash
# From a fresh clone: install what is missing, build, write the synthetic corpus, train the
# quickstart baseline (tiny model_original) and the quickstart memory model (tiny
# model_memory, causal cross-attention fusion, bank initialised from the corpus' facts) on
# the same data and step budget, print them side by side (`xlhost exp compare`) and write a
# report with their curves (`xlhost exp report`: out/0.1.1/report/report.md).
#   scripts/quickstart.sh               both runs, one seed each (about 2 minutes on 2 cores, built)
#   scripts/quickstart.sh --seeds N     N seeds each: mean ± standard deviation (N times as long)
#   scripts/quickstart.sh --baseline    the baseline alone
#   scripts/quickstart.sh --sft         staged instead: pretraining with the corpus' BPE tokenizer,
#                                       then supervised fine-tuning on its conversations, for
#                                       both models (about 1.5 minutes on 2 cores, built), compared
set -euo pipefail
cd "$(dirname "$0")/.."
baseline_only=false seeds=1 sft=false
while (($#)); do
  case $1 in
    --baseline) baseline_only=true ;;
    --seeds) seeds=$2; shift ;;
    --sft) sft=true ;;
    *) echo "usage: scripts/quickstart.sh [--baseline] [--seeds N] [--sft]" >&2; exit 2 ;;
  esac
  shift
done
scripts/setup.sh
scripts/build.sh xlhost model_original model_memory
# The tokenizer is the newest part of the corpus: an older data/synth is written again (the same files).
[[ -f data/synth/tokenizer/tokenizer.json ]] || build/bin/xlhost data synth --out data/synth

if $sft; then
  # Each SFT run starts from its pretraining run's folder (train.init_from): one seed.
  ((seeds == 1)) || { echo "scripts/quickstart.sh: --sft runs one seed" >&2; exit 2; }
  for stage in quickstart_bpe quickstart_sft; do
    build/bin/xlhost run --plugin build/plugins/model_original.so --config configs/$stage.json --overwrite
  done
  if ! $baseline_only; then
    for stage in quickstart_memory_bpe quickstart_memory_sft; do
      build/bin/xlhost run --plugin build/plugins/model_memory.so --config configs/$stage.json --overwrite
    done
  fi
  echo
  build/bin/xlhost exp show 0.0.3  # the lineage (pretraining -> SFT) and the record in brief
  $baseline_only && exit 0
  echo "SFT comparison (pretrained 300 steps, fine-tuned 200 steps on the synthetic conversations):"
  build/bin/xlhost exp compare 0.0.3 0.1.3
  exit 0
fi

build/bin/xlhost run --plugin build/plugins/model_original.so --config configs/quickstart.json --seeds "$seeds" --overwrite
$baseline_only && exit 0
build/bin/xlhost run --plugin build/plugins/model_memory.so --config configs/quickstart_memory.json --seeds "$seeds" --overwrite

echo
echo "quickstart comparison (same data, 300 steps of 16x128 tokens, $seeds seed(s) each):"
build/bin/xlhost exp compare 0.0.1 0.1.1
build/bin/xlhost exp report 0.1.1 0.0.1
