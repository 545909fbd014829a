#!/usr/bin/env bash
# From a fresh clone: install what is missing, build everything and run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
start=$(date +%s)
scripts/build.sh
echo "build: $(( $(date +%s) - start )) s"
start=$(date +%s)
cd build
ctest --output-on-failure -j2 --timeout 900
echo "tests: $(( $(date +%s) - start )) s"
