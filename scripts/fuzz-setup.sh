#!/usr/bin/env bash
# Creates (idempotently) the Python virtualenv that the schema fuzz test runs Schemathesis from.
# Usage: scripts/fuzz-setup.sh            -> prints the venv's python path on the last line
# Env:   HEARTH_FUZZ_VENV  where to put the venv (default: <repo>/.venv-fuzz)
# A fresh machine may lack python3-venv/ensurepip: then apt-get installs it (as root, CI is root).
set -euo pipefail
cd "$(dirname "$0")/.."
SCHEMATHESIS_VERSION="4.32.5"
VENV="${HEARTH_FUZZ_VENV:-$PWD/.venv-fuzz}"
STAMP="$VENV/.hearth-schemathesis-$SCHEMATHESIS_VERSION"

ready() { [[ -f "$STAMP" && -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'import schemathesis' 2>/dev/null; }
if ready; then
  echo "$VENV/bin/python"
  exit 0
fi

# One installer at a time (two checkouts or two runs sharing HEARTH_FUZZ_VENV).
mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
if command -v flock >/dev/null; then flock 9; fi
if ready; then
  echo "$VENV/bin/python"
  exit 0
fi

PY="$(command -v python3 || true)"
if [[ -z "$PY" ]]; then
  echo "fuzz-setup: python3 missing, installing it with apt-get" >&2
  apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3 python3-venv python3-pip >&2
  PY="$(command -v python3)"
fi

rm -rf "$VENV"
if ! "$PY" -m venv "$VENV" >&2; then
  echo "fuzz-setup: 'python3 -m venv' failed, installing python3-venv with apt-get" >&2
  rm -rf "$VENV"
  apt-get update -q >&2
  PYVER="$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >&2 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "python${PYVER}-venv" >&2 || true
  "$PY" -m venv "$VENV" >&2
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >&2
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" >&2
"$VENV/bin/python" -c 'import schemathesis' >&2
touch "$STAMP"
echo "$VENV/bin/python"
