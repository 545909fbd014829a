#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz, clang with ASan + UBSan) into build-fuzz/ and
# runs each for SECONDS (default 60) from its seed corpus. New inputs go to
# build-fuzz/corpus/, crashes to build-fuzz/crashes/ (the run fails when there is one).
#   scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/xlhost-ccache} CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
if [[ ! -f build-fuzz/build.ninja ]]; then
  CXX=clang++ cmake -S tests/fuzz -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER_LAUNCHER=ccache >/dev/null
fi
ninja -C build-fuzz
mkdir -p build-fuzz/crashes
status=0
for seeds in tests/fuzz/corpus/*/; do
  target=$(basename "$seeds")
  corpus=build-fuzz/corpus/$target
  mkdir -p "$corpus"
  log=build-fuzz/$target.log
  if build-fuzz/fuzz_"$target" "$corpus" "$seeds" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -max_len=65536 -artifact_prefix=build-fuzz/crashes/"$target"- -print_final_stats=1 >"$log" 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
    echo "fuzz_$target: $runs executions in ${seconds} s, no crash (corpus $(ls "$corpus" | wc -l) inputs)"
  else
    echo "fuzz_$target: CRASH, see $log and build-fuzz/crashes/"
    grep -m5 -E 'ERROR|runtime error|SUMMARY' "$log" || tail -20 "$log"
    status=1
  fi
done
exit $status
