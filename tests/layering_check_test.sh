#!/usr/bin/env bash
# The layering check catches what it is for: on a copy of the sources, an upward include,
# an include loop, a long function and a long file each make it fail, naming the place.
# Usage: layering_check_test.sh SOURCE_DIR
set -uo pipefail
src=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
source "$(dirname "$0")/checks.sh"
checker=$src/scripts/check_layers.py

fresh_copy() {
  rm -rf "$work/tree" && mkdir -p "$work/tree"
  cp -r "$src/core" "$src/host" "$src/sdk" "$src/plugins" "$src/CONTRIBUTING.md" "$work/tree/"
}
fails_with() {  # fails_with TEXT: the checker exits 1 and prints TEXT
  local out
  out=$(python3 "$checker" "$work/tree" 2>&1) && { echo "passed: $out"; return 1; }
  contains "$out" "$1" || { echo "$out"; return 1; }
}

fresh_copy
check "the sources as they are pass" python3 "$checker" "$work/tree"

fresh_copy
sed -i '1i #include "xlhost/core/train/trainer.hpp"' "$work/tree/core/src/util/progress.cpp"
check "an upward include fails, naming file, line and areas" \
  fails_with "core/src/util/progress.cpp:1: util includes xlhost/core/train/trainer.hpp of train, which is above it"

fresh_copy
# Two files of one area that include nothing else of the project: the loop has no other path.
sed -i '1i #include "xlhost/core/util/printable_text.hpp"' "$work/tree/core/include/xlhost/core/util/md5.hpp"
sed -i '1i #include "xlhost/core/util/md5.hpp"' "$work/tree/core/src/util/printable_text.cpp"
check "an include loop between two files fails" \
  fails_with "include loop: core/util/md5 -> core/util/printable_text -> core/util/md5"

fresh_copy
{ echo "namespace xlhost::core {"; echo "int long_one(int x) {"; for i in $(seq 90); do echo "  x += $i;"; done
  echo "  return x;"; echo "}"; echo "}"; } > "$work/tree/core/src/util/long_one.cpp"
check "a function over 80 lines fails" fails_with "core/src/util/long_one.cpp:2: function long_one has 93 lines"

fresh_copy
for i in $(seq 420); do echo "// line $i"; done > "$work/tree/host/long_file.cpp"
check "a file over 400 lines fails" fails_with "host/long_file.cpp: 420 lines (at most 400)"

fresh_copy
sed -i '1i #include "xlhost/core/util/error.hpp"' "$work/tree/plugins/model/model.cpp"
check "a plugin including core fails" fails_with "a plugin includes xlhost/core/util/error.hpp"

fresh_copy
sed -i 's/`util` < `http`/`http` < `util`/' "$work/tree/CONTRIBUTING.md"
check "the order is read from CONTRIBUTING.md" fails_with "http includes xlhost/core/util/"

finish
