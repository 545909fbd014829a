#!/usr/bin/env bash
# Prints the path of the project's Python environment (see scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -n ${XLHOST_VENV:-} ]]; then
  echo "$XLHOST_VENV"
else
  echo "${XDG_CACHE_HOME:-$HOME/.cache}/xlhost/venv-$(md5sum scripts/python-requirements.txt | cut -c1-12)"
fi
