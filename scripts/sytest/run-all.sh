#!/usr/bin/env bash
# All of SyTest against a built Hearth with its federation listener on: the four chunks of
# run-nonfed.sh plus tests/50federation as chunk 5, run one after another (the machine is shared:
# one chunk's servers at a time). docs/conformance.md has the figures.
#
#   scripts/sytest/run-all.sh <hearth dir with dist/> <run name> [test files or folders...]
#
# With test files or folders after the run name, only those run, as one chunk (<run name>-x).
#
# ../shared/sytest is read-only, so it is copied to $TOOL and its plugin patched there: first
# hearth-plugin.patch (as run-nonfed.sh), then hearth-federation.patch: the federation listener on
# 127.0.0.1:<federation port> (the port the plugin names the server after) with TLS, its
# certificate signed by SyTest's CA (keys/ca.crt, trusted by node through NODE_EXTRA_CA_CERTS,
# which the plugin sets), certificates checked (federation.verify_tls: true), and loopback
# allowed for outbound federation (SyTest's mock servers and the other Hearth listen there).
#
# Env: as run-nonfed.sh: SYTEST_SHARED (default ../shared/sytest), SYTEST_GIT, SYTEST_WORK (default /tmp/hearth-sytest-nonfed), TOOL
# (default /tmp/hearth-sytest-tool-fed), PORTS (default 19400:19449), CHUNKS (default
# "1 2 3 4 5"). Each chunk's run directory is $SYTEST_WORK/runs/<run name>-<n>.
set -eu
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
shared="$(cd "${SYTEST_SHARED:-$here/../../../shared/sytest}" && pwd)"
HEARTH="$(cd "${1:?hearth dir}" && pwd)"
NAME="${2:?run name}"
shift 2
TOOL="${TOOL:-/tmp/hearth-sytest-tool-fed}"
export SYTEST_GIT="${SYTEST_GIT:-/work/.mirror/matrix-org+sytest/repo}"
export SYTEST_WORK="${SYTEST_WORK:-/tmp/hearth-sytest-nonfed}"
export PORTS="${PORTS:-19400:19449}" HEARTH_LOG_LEVEL="${HEARTH_LOG_LEVEL:-info}" HEARTH_DIR="$HEARTH"

rm -rf "$TOOL" && mkdir -p "$TOOL" && cp -r "$shared/." "$TOOL/"
(cd "$TOOL" && patch -s -p0 < "$here/hearth-plugin.patch" && patch -s -p0 < "$here/hearth-federation.patch")
# Net::Async::HTTP::Server 0.09+ shims (../shared/notes/sytest.md, set-up step 3), if prepared.
if [ ! -d "$SYTEST_WORK/perl5lib" ] && [ -d /tmp/hearth-sytest/perl5lib ]; then
  mkdir -p "$SYTEST_WORK" && cp -r /tmp/hearth-sytest/perl5lib "$SYTEST_WORK/"
fi

if [ "$#" -gt 0 ]; then
  RUN_DIR="$SYTEST_WORK/runs/$NAME-x" "$TOOL/run-hearth.sh" "$@" | tail -1
  exit 0
fi

i=0
CHUNKS="${CHUNKS:-1 2 3 4 5}"
for chunk in "tests/10apidoc tests/11register.pl tests/12login tests/13logout.pl tests/14account tests/21presence-events.pl" \
             "tests/30rooms" \
             "tests/31sync tests/32room-versions.pl tests/40presence.pl tests/41end-to-end-keys tests/42tags.pl tests/44account_data.pl tests/45openid.pl tests/46direct tests/48admin.pl tests/49ignore.pl" \
             "tests/51media tests/52user-directory tests/54identity.pl tests/60app-services tests/61push tests/80torture tests/90jira" \
             "tests/50federation"; do
  i=$((i+1))
  case " $CHUNKS " in *" $i "*) ;; *) continue ;; esac
  # shellcheck disable=SC2086 # the chunk is a list of paths
  RUN_DIR="$SYTEST_WORK/runs/$NAME-$i" "$TOOL/run-hearth.sh" $chunk | tail -1
done
