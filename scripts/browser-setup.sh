#!/usr/bin/env bash
# Makes sure a Chromium for the browser test (spec/browser) is installed, idempotently, and prints
# its path on the last line. The test drives it with playwright-core (a devDependency), which
# downloads no browser of its own: Debian's chromium package is the browser.
# Usage: scripts/browser-setup.sh
# Env:   HEARTH_CHROMIUM  a Chromium binary to use instead (nothing is installed then)
# A fresh machine (CI runs as root) gets it from apt-get; elsewhere the script says what to run.
set -euo pipefail

find_chromium() {
  if [[ -n "${HEARTH_CHROMIUM:-}" && -x "${HEARTH_CHROMIUM}" ]]; then echo "$HEARTH_CHROMIUM"; return 0; fi
  for c in chromium chromium-browser google-chrome; do
    if command -v "$c" >/dev/null 2>&1; then command -v "$c"; return 0; fi
  done
  return 1
}

if path="$(find_chromium)"; then
  echo "$path"
  exit 0
fi

if [[ "$(id -u)" != "0" ]]; then
  echo "browser-setup: chromium is not installed; run as root: apt-get install -y chromium" >&2
  exit 1
fi

# One installer at a time (dpkg has its own lock, but a second apt-get would fail, not wait).
exec 9>/tmp/hearth-browser-setup.lock
if command -v flock >/dev/null; then flock 9; fi
if path="$(find_chromium)"; then
  echo "$path"
  exit 0
fi
echo "browser-setup: installing chromium with apt-get" >&2
apt-get update -q >&2
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core >&2
find_chromium
