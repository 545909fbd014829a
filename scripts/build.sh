#!/usr/bin/env bash
# Configures (once) and builds xlhost into build/. Extra arguments are ninja targets.
# XLHOST_BUILD_DIR=D XLHOST_CMAKE_ARGS="-D..." configure another build folder (a benchmark's).
set -euo pipefail
cd "$(dirname "$0")/.."
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/xlhost-ccache}
# Clones in other folders share cached objects (paths below the clone are made relative).
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-5G}
# The precompiled header changes its mtime on every rebuild; let ccache trust its content.
export CCACHE_SLOPPINESS=${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}
dir=${XLHOST_BUILD_DIR:-build}
if [[ ! -f $dir/build.ninja ]]; then
  # shellcheck disable=SC2086  # the arguments are words
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release ${XLHOST_CMAKE_ARGS:-} >/dev/null
fi
ninja -C "$dir" "$@"
