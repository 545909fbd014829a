#!/usr/bin/env bash
# Installs what xlhost needs and is missing: Debian 12 packages (apt-get), and the Python
# environment whose torch wheel is the LibTorch xlhost builds against. Idempotent and
# silent when everything is present.
#
# The environment lives outside the clone, shared by every clone on the machine:
#   XLHOST_VENV   default ~/.cache/xlhost/venv-<hash of scripts/python-requirements.txt>
# It is rebuilt only when python-requirements.txt changes; scripts/python-tools.txt (oracles
# added later) is installed on top of it. scripts/python-env.sh prints its path.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  cmake ninja-build g++ git pkg-config
  python3-venv               # only where python3 is Debian's (a pyenv python has venv built in)
  libtcmalloc-minimal4       # ~2x faster CPU training of the 26M baseline than glibc malloc
  libboost-dev libboost-program-options-dev libboost-filesystem-dev
  rapidjson-dev libgit2-dev
  libxxhash-dev              # checkpoint manifests: an XXH3-128 checksum per file
  libpcre2-dev               # tokenizer.json pre-tokenizers: regular expressions with Unicode properties and look-ahead
  libgloo-dev                # headers only: the torch wheel has Gloo compiled in but ships no gloo/*.h
  libgtest-dev libbenchmark-dev
  ccache curl
  prometheus                 # server and promtool, used by the metrics tests
  gnuplot-nox                # draws the curves of `xlhost exp report`
  libjs-chart.js libjs-marked  # `xlhost exp serve`: charts and record.md, served from /usr/share/javascript
  chromium                   # headless, drives the `exp serve` page in tests (DevTools protocol)
  clang libclang-rt-14-dev   # libFuzzer and the sanitizer runtimes for tests/fuzz (scripts/fuzz.sh)
)

python=$(command -v python3 || true)
missing=()
for p in "${packages[@]}"; do
  [[ $p == python3-venv && -n $python ]] && "$python" -c "import venv, ensurepip" 2>/dev/null && continue
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

venv=$(scripts/python-env.sh)
if [[ ! -f $venv/.xlhost-complete ]]; then
  echo "setup: creating the Python environment $venv (torch wheel and test oracles, ~5 GB, once per machine)"
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
  start=$(date +%s)
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r scripts/python-requirements.txt
  echo "setup: Python environment ready in $(( $(date +%s) - start )) s"
  cp scripts/python-requirements.txt "$venv/.xlhost-complete"
fi
if ! cmp -s scripts/python-tools.txt "$venv/.xlhost-tools"; then
  echo "setup: adding scripts/python-tools.txt to $venv"
  constraints=$(mktemp)
  grep -v '^#' scripts/python-requirements.txt > "$constraints"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r scripts/python-tools.txt -c "$constraints"
  rm -f "$constraints"
  cp scripts/python-tools.txt "$venv/.xlhost-tools"
fi
