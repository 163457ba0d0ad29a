#!/usr/bin/env bash
# Runs one throwaway single-node Cassandra 5.0 on loopback for development and tests (not for
# production): cassandra-all and its dependencies from Maven Central, run on JDK 17.
#   scripts/cassandra.sh start   install what is missing (JDK 17, Maven, the jars), start; prints host:port
#   scripts/cassandra.sh stop    stop it and remove its data
#   scripts/cassandra.sh url     print host:port (exit 1 if not running)
# Idempotent: start on a running instance only prints the address. The jars are cached in
# HEARTH_CASSANDRA_HOME (default ~/.cache/hearth-cassandra); data lives in a temp dir and is
# wiped on stop and on every fresh start (a reused data dir can fail the datacenter check).
# HEARTH_CASSANDRA_PORT (default 19042) picks the CQL port; the storage port is CQL port + 1.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PORT="${HEARTH_CASSANDRA_PORT:-19042}"
STORAGE_PORT=$((PORT + 1))
HOME_DIR="${HEARTH_CASSANDRA_HOME:-${HOME:-/root}/.cache/hearth-cassandra}"
RUN_DIR="${HEARTH_CASSANDRA_DIR:-${TMPDIR:-/tmp}/hearth-cassandra-$PORT}"
PIDFILE="$RUN_DIR/cassandra.pid"
LOG="$RUN_DIR/cassandra.log"
ADDR="127.0.0.1:$PORT"

sudo_cmd() { if [ "$(id -u)" -ne 0 ]; then sudo "$@"; else "$@"; fi; }

apt_install() {
  command -v apt-get >/dev/null || { echo "$* missing and apt-get is not available" >&2; exit 1; }
  sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive sudo_cmd apt-get install -y -qq "$@" >/dev/null
}

java17() {
  for j in /usr/lib/jvm/java-17-openjdk-*/bin/java /usr/lib/jvm/*17*/bin/java; do
    [ -x "$j" ] && { echo "$j"; return 0; }
  done
  return 1
}

install() {
  # Cassandra 5.0 runs on JDK 11 or 17 only; newer JDKs fail at start (SecurityManager removal).
  java17 >/dev/null || apt_install openjdk-17-jre-headless
  java17 >/dev/null || { echo "no JDK 17 found after install" >&2; exit 1; }
  if [ ! -f "$HOME_DIR/lib/.complete" ]; then
    command -v mvn >/dev/null || apt_install maven
    mkdir -p "$HOME_DIR/lib"
    mvn -B -q -f "$ROOT/tools/cassandra/pom.xml" \
      org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$HOME_DIR/lib" >&2
    ls "$HOME_DIR"/lib/cassandra-all-*.jar >/dev/null 2>&1 || { echo "cassandra-all was not fetched" >&2; exit 1; }
    touch "$HOME_DIR/lib/.complete"
  fi
}

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }
ready() { [ -f "$LOG" ] && grep -q "Starting listening for CQL clients" "$LOG"; }

start() {
  if running && ready; then echo "$ADDR"; exit 0; fi
  if running; then
    wait_ready
    echo "$ADDR"
    exit 0
  fi
  install
  rm -rf "$RUN_DIR"
  mkdir -p "$RUN_DIR/conf" "$RUN_DIR/data" "$RUN_DIR/tmp"
  sed -e "s/@PORT@/$PORT/g" -e "s/@STORAGE_PORT@/$STORAGE_PORT/g" \
    "$ROOT/tools/cassandra/cassandra.yaml.in" >"$RUN_DIR/conf/cassandra.yaml"
  cp "$ROOT/tools/cassandra/logback.xml" "$RUN_DIR/conf/logback.xml"
  local java opens=()
  java="$(java17)"
  # The module flags of Cassandra 5.0's conf/jvm17-server.options, plus two it needs on 17.
  for m in java.base/jdk.internal.misc java.base/jdk.internal.ref java.base/sun.nio.ch \
    java.management.rmi/com.sun.jmx.remote.internal.rmi java.rmi/sun.rmi.registry \
    java.rmi/sun.rmi.server java.sql/java.sql java.management/com.sun.jmx.remote.security; do
    opens+=(--add-exports "$m=ALL-UNNAMED")
  done
  for m in java.base/java.lang.module java.base/jdk.internal.loader java.base/jdk.internal.ref \
    java.base/jdk.internal.reflect java.base/jdk.internal.math java.base/jdk.internal.module \
    java.base/jdk.internal.util.jar jdk.management/com.sun.management.internal java.base/sun.nio.ch \
    java.base/java.io java.base/java.lang java.base/java.lang.reflect java.base/java.util \
    java.base/java.util.concurrent java.base/java.util.concurrent.atomic \
    java.base/java.util.concurrent.locks java.base/java.nio; do
    opens+=(--add-opens "$m=ALL-UNNAMED")
  done
  # setsid: the node outlives the shell (and the test run) that started it.
  setsid "$java" "${opens[@]}" \
    -Djdk.attach.allowAttachSelf=true -Dio.netty.tryReflectionSetAccessible=true \
    -XX:+UseG1GC -Xms${HEARTH_CASSANDRA_HEAP:-1536m} -Xmx${HEARTH_CASSANDRA_HEAP:-1536m} -Xss256k \
    -Djava.net.preferIPv4Stack=true -Djava.io.tmpdir="$RUN_DIR/tmp" -Djna.tmpdir="$RUN_DIR/tmp" \
    -Dcassandra.config="file://$RUN_DIR/conf/cassandra.yaml" -Dcassandra.storagedir="$RUN_DIR/data" \
    -Dcassandra-foreground=yes -Dlogback.configurationFile="$RUN_DIR/conf/logback.xml" \
    -Dcassandra.skip_wait_for_gossip_to_settle=0 -Dcassandra.unsafesystem=true \
    -Dcassandra.jmx.local.port=$((PORT + 2)) \
    -cp "$RUN_DIR/conf:$HOME_DIR/lib/*" org.apache.cassandra.service.CassandraDaemon \
    >"$LOG" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  wait_ready
  echo "$ADDR"
}

wait_ready() {
  for _ in $(seq 1 1800); do
    ready && return 0
    if ! running; then
      echo "cassandra exited during start; last log lines:" >&2
      tail -n 40 "$LOG" >&2 || true
      exit 1
    fi
    sleep 0.1
  done
  echo "cassandra did not become ready in 180 s; see $LOG" >&2
  exit 1
}

stop() {
  if running; then
    local pid
    pid="$(cat "$PIDFILE")"
    kill "$pid"
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -rf "$RUN_DIR"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  url) if running && ready; then echo "$ADDR"; else exit 1; fi ;;
  *) echo "usage: $0 start|stop|url" >&2; exit 2 ;;
esac
