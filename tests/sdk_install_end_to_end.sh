#!/usr/bin/env bash
# CONTRIBUTING.md's walk-through, end to end: install xlhost and the SDK into a prefix,
# `xlhost plugin new`, the parallel-block edit of step 3, build out of tree with
# find_package(xlhost_sdk), `xlhost plugin check`, train it, train the baseline with the
# same config, compare the two, and run the project's own ctest. Steps are cut short
# (--set train.max_steps) to keep CI fast; everything else is as written.
# Usage: sdk_install_end_to_end.sh BUILD_DIR
set -u
build=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
source "$(dirname "$0")/checks.sh"
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)

check "cmake --install" cmake --install "$build" --prefix "$work/prefix"
xlhost=$work/prefix/bin/xlhost
cd "$work"
mkdir -p experiments && cd experiments
check "plugin new" "$xlhost" plugin new parallel_block
check "plugin new refuses to overwrite" bash -c "! '$xlhost' plugin new parallel_block"
check "the new config is the quickstart baseline's" diff <(grep -v '"id"' parallel_block/config.json | grep -v '^//') \
  <(grep -v '"id"' "$(dirname "$0")/../configs/quickstart.json")
# Step 3, as CONTRIBUTING.md words it: attention and feed-forward in parallel, ffn_norm removed.
check "step 3 edit applies" python3 - parallel_block/parallel_block.cpp <<'PY'
import re, sys
path = sys.argv[1]
s = open(path).read()
old = """    auto h = x + attention(attention_norm(x), rope, cache, layer);
    return h + feed_forward(ffn_norm(h));"""
new = """    auto n = attention_norm(x);
    return x + attention(n, rope, cache, layer) + feed_forward(n);"""
assert old in s, "the lines CONTRIBUTING.md says to replace are not in the scaffold"
s = s.replace(old, new)
for line in ['        ffn_norm(c.get_int("dim"), c.get_float("norm_eps")),\n', '    register_module("ffn_norm", ffn_norm);\n',
             '  RMSNorm ffn_norm;\n']:
    assert line in s, "no " + line
    s = s.replace(line, "")
s = re.sub(r'd\.description = "[^"]*"', 'd.description = "parallel attention and feed-forward (GPT-J style)"', s)
open(path, "w").write(s)
PY
check "configure out of tree" cmake -S parallel_block -B parallel_block/build -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix" "${launcher[@]}"
check "build out of tree" cmake --build parallel_block/build
check "the build wrote the plugin's checksum" test -f parallel_block/build/parallel_block.so.md5
out=$("$xlhost" plugin info "$work/prefix/lib/xlhost/plugins/model_original.so" 2>&1)
check "an installed plugin is verified against its checksum" contains "$out" "verified against $work/prefix/lib/xlhost/plugins/model_original.so.md5"
check "plugin check passes (every parameter gets a gradient)" \
  "$xlhost" plugin check parallel_block/build/parallel_block.so --config parallel_block/config.json
check "data synth" "$xlhost" data synth --out data/synth --entities 20 --train-docs 200 --val-docs 20
short=(--set train.max_steps=6 --set train.log_interval=2 --set eval.max_facts=5 --set eval.max_batches=2 --no-metrics)
check "run the new plugin" "$xlhost" run --plugin parallel_block/build/parallel_block.so \
  --config parallel_block/config.json "${short[@]}"
check "run wrote a checkpoint" test -f out/0.9.0/checkpoints/step_00000006/model.safetensors
check "baseline with the same config" "$xlhost" run --plugin "$work/prefix/lib/xlhost/plugins/model_original.so" \
  --config parallel_block/config.json --set experiment.id=0.0.1 --set experiment.description=baseline "${short[@]}"
out=$("$xlhost" exp compare 0.0.1 0.9.0 2>&1); code=$?
check "exp compare of the two" test $code -eq 0
check "they differ in the plugin only" grep -qE '^\(plugin\) +model_original 1\.0\.0 +parallel_block 1\.0\.0$' <<<"$out"
check "no other config difference" bash -c "! grep -qE '^(train|eval|data|model)\.' <<<'$out'"
check "generated project's ctest" bash -c "cd parallel_block/build && ctest --output-on-failure"
finish
