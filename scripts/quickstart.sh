#!/usr/bin/env bash
# From a fresh clone: install what is missing, build, write the synthetic corpus and train
# the quickstart model (a tiny model_original) on it, printing loss, samples and paths.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh xlhost model_original
[[ -f data/synth/train.jsonl ]] || build/bin/xlhost data synth --out data/synth
build/bin/xlhost run --plugin build/plugins/model_original.so --config configs/quickstart.json "$@"
