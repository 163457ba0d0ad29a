#!/usr/bin/env bash
# Runs one throwaway Redis on loopback for development and tests (not for production).
#   scripts/redis.sh start   install redis-server from Debian if missing, start it; prints its URL
#   scripts/redis.sh stop    stop it and remove its directory
#   scripts/redis.sh url     print the URL (exit 1 if not running)
# Idempotent: start on a running instance only prints the URL; stop on a stopped one does nothing.
# HEARTH_REDIS_PORT (default 16379) and HEARTH_REDIS_DIR (default $TMPDIR/hearth-redis-<port>)
# choose where it lives. Nothing is persisted: no RDB, no AOF.
set -euo pipefail

PORT="${HEARTH_REDIS_PORT:-16379}"
DIR="${HEARTH_REDIS_DIR:-${TMPDIR:-/tmp}/hearth-redis-$PORT}"
PIDFILE="$DIR/redis.pid"
URL="redis://127.0.0.1:$PORT"

running() {
  [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

install() {
  command -v redis-server >/dev/null && return 0
  command -v apt-get >/dev/null || { echo "redis-server is missing and apt-get is not available" >&2; exit 1; }
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
  command -v redis-server >/dev/null || { echo "installing redis-server failed" >&2; exit 1; }
}

ping() {
  redis-cli -p "$PORT" ping 2>/dev/null | grep -q PONG
}

case "${1:-}" in
  start)
    if running && ping; then echo "$URL"; exit 0; fi
    install
    mkdir -p "$DIR"
    if ! redis-server --port "$PORT" --bind 127.0.0.1 --dir "$DIR" --daemonize yes --pidfile "$PIDFILE" \
      --logfile "$DIR/redis.log" --save "" --appendonly no >/dev/null; then
      echo "redis-server failed to start on port $PORT" >&2
      rm -rf "$DIR"
      exit 1
    fi
    for _ in $(seq 1 100); do
      if ping; then echo "$URL"; exit 0; fi
      sleep 0.1
    done
    echo "redis did not answer on port $PORT; see $DIR/redis.log" >&2
    exit 1
    ;;
  stop)
    if running; then
      pid="$(cat "$PIDFILE")"
      kill "$pid"
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -rf "$DIR"
    ;;
  url)
    running && ping && echo "$URL"
    ;;
  *)
    echo "usage: $0 start|stop|url" >&2
    exit 2
    ;;
esac
