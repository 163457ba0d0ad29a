#!/usr/bin/env bash
# SyTest's non-federation folders against a built Hearth, in four chunks run one after another
# (the machine is shared: one chunk's two servers at a time). docs/conformance.md has the figures.
#
#   scripts/sytest/run-nonfed.sh <hearth dir with dist/> <run name>
#
# ../shared/sytest (the runner and the Hearth plugin) is read-only, so it is copied to $TOOL and
# the plugin's config patched there (hearth-plugin.patch): no metrics listener (both servers
# would bind 127.0.0.1:9000 and the second would die with EADDRINUSE), guest access and URL
# previews on (off by default in Hearth, on in Synapse's SyTest config), loopback allowed for
# outbound requests (SyTest's push gateway, AS and identity servers listen there).
#
# Env: SYTEST_GIT (default /work/.mirror/matrix-org+sytest/repo), SYTEST_WORK (default
# /tmp/hearth-sytest-nonfed: extracted SyTest, perl5lib shims, runs), TOOL (default
# /tmp/hearth-sytest-tool), PORTS (default 19400:19449), CHUNKS (default "1 2 3 4": which chunks
# to run). Each chunk's run directory is
# $SYTEST_WORK/runs/<run name>-<n>; its summary.txt and failures.txt are as run-hearth.sh writes them.
set -eu
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
shared="$(cd "$here/../../../shared/sytest" && pwd)"
HEARTH="$(cd "${1:?hearth dir}" && pwd)"
NAME="${2:?run name}"
TOOL="${TOOL:-/tmp/hearth-sytest-tool}"
export SYTEST_GIT="${SYTEST_GIT:-/work/.mirror/matrix-org+sytest/repo}"
export SYTEST_WORK="${SYTEST_WORK:-/tmp/hearth-sytest-nonfed}"
export PORTS="${PORTS:-19400:19449}" HEARTH_LOG_LEVEL="${HEARTH_LOG_LEVEL:-info}" HEARTH_DIR="$HEARTH"

rm -rf "$TOOL" && mkdir -p "$TOOL" && cp -r "$shared/." "$TOOL/"
(cd "$TOOL" && patch -s -p0 < "$here/hearth-plugin.patch")
# Net::Async::HTTP::Server 0.09+ shims (../shared/notes/sytest.md, set-up step 3), if prepared.
if [ ! -d "$SYTEST_WORK/perl5lib" ] && [ -d /tmp/hearth-sytest/perl5lib ]; then
  mkdir -p "$SYTEST_WORK" && cp -r /tmp/hearth-sytest/perl5lib "$SYTEST_WORK/"
fi

i=0
CHUNKS="${CHUNKS:-1 2 3 4}"
for chunk in "tests/10apidoc tests/11register.pl tests/12login tests/13logout.pl tests/14account tests/21presence-events.pl" \
             "tests/30rooms" \
             "tests/31sync tests/32room-versions.pl tests/40presence.pl tests/41end-to-end-keys tests/42tags.pl tests/44account_data.pl tests/45openid.pl tests/46direct tests/48admin.pl tests/49ignore.pl" \
             "tests/51media tests/52user-directory tests/54identity.pl tests/60app-services tests/61push tests/80torture tests/90jira"; do
  i=$((i+1))
  case " $CHUNKS " in *" $i "*) ;; *) continue ;; esac
  # shellcheck disable=SC2086 # the chunk is a list of paths
  RUN_DIR="$SYTEST_WORK/runs/$NAME-$i" "$TOOL/run-hearth.sh" $chunk | tail -1
done
