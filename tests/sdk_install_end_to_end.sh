#!/usr/bin/env bash
# The plugin author's path, end to end: install xlhost and the SDK into a prefix,
# `xlhost plugin new`, build the new plugin out of tree with find_package(xlhost_sdk),
# `xlhost plugin check` it, train it briefly, and run the project's own ctest.
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
check "plugin new" "$xlhost" plugin new my_arch
check "plugin new refuses to overwrite" bash -c "! '$xlhost' plugin new my_arch"
check "configure out of tree" cmake -S my_arch -B my_arch/build -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix" "${launcher[@]}"
check "build out of tree" cmake --build my_arch/build
check "plugin check passes" "$xlhost" plugin check my_arch/build/my_arch.so --config my_arch/config.json
check "data synth" "$xlhost" data synth --out data/synth --entities 20 --train-docs 200 --val-docs 20
check "run the new plugin" "$xlhost" run --plugin my_arch/build/my_arch.so --config my_arch/config.json \
  --set train.max_steps=5 --set eval.max_facts=5 --no-metrics
check "run wrote a checkpoint" test -f out/0.9.0/checkpoints/step_00000005/model.safetensors
check "generated project's ctest" bash -c "cd my_arch/build && ctest --output-on-failure"
finish
