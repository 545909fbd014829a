#!/usr/bin/env bash
# From a fresh clone: install what is missing, build everything and run every test.
#   scripts/test.sh              build, every ctest test, then 20 s of each fuzz target (what CI runs)
#   scripts/test.sh --fuzz [S]   only the fuzz targets (tests/fuzz), S seconds each (default 300)
#   scripts/test.sh --sanitize   only the unit tests, built with ASan + UBSan into build-sanitize/
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
case ${1:-} in
  --fuzz)
    exec scripts/fuzz.sh "${2:-300}" ;;
  --sanitize)
    export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/xlhost-ccache} CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
    [[ -f build-sanitize/build.ninja ]] ||
      cmake -S . -B build-sanitize -G Ninja -DCMAKE_BUILD_TYPE=Release -DXLHOST_SANITIZE=ON >/dev/null
    ninja -C build-sanitize xlhost_tests
    cd build-sanitize
    # LibTorch keeps process-lifetime allocations that LeakSanitizer would report as leaks;
    # every other ASan and UBSan error fails the test.
    export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
    exec ctest --output-on-failure -j2 --timeout 1800 -E 'end_to_end' ;;
  "") ;;
  *) echo "usage: scripts/test.sh [--fuzz [SECONDS] | --sanitize]" >&2; exit 2 ;;
esac
# ctest -j2 runs two tests at once on these cores: their OpenMP workers must sleep, not spin,
# between parallel regions (the launcher would let a lone `xlhost run` spin).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
start=$(date +%s)
scripts/build.sh
echo "build: $(( $(date +%s) - start )) s"
start=$(date +%s)
(cd build && ctest --output-on-failure -j2 --timeout 900)
echo "tests: $(( $(date +%s) - start )) s"
start=$(date +%s)
scripts/fuzz.sh 20
echo "fuzz: $(( $(date +%s) - start )) s"
