#!/usr/bin/env bash
# Installs every Debian 12 package xlhost needs. Idempotent and silent when all are present.
set -euo pipefail

packages=(
  cmake ninja-build g++ git pkg-config
  libtorch-dev
  libopenblas0-pthread       # without it LibTorch falls back to the reference BLAS, ~10x slower
  libtcmalloc-minimal4       # ~2x faster CPU training of the 26M baseline than glibc malloc
  libboost-dev libboost-program-options-dev libboost-filesystem-dev
  rapidjson-dev libgit2-dev libgloo-dev
  libgtest-dev libbenchmark-dev
  ccache curl
  prometheus                 # server and promtool, used by the metrics tests
  gnuplot-nox                # draws the curves of `xlhost exp report`
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || true)
if [[ $blas != *openblas* ]]; then
  echo "setup: warning: libblas.so.3 resolves to '${blas:-nothing}', not OpenBLAS; training will be ~10x slower." >&2
  echo "       fix: sudo update-alternatives --config libblas.so.3-x86_64-linux-gnu" >&2
fi
