#!/usr/bin/env bash
# Stops the Zipkin that start-zipkin.sh started on ZIPKIN_PORT (default 9411) and removes
# its run folder. Exits 0 when nothing is running.
set -euo pipefail

Z="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
PORT="${ZIPKIN_PORT:-9411}"
RUN="$Z/run/zipkin-$PORT"
pid="$(cat "$RUN/zipkin.pid" 2>/dev/null || true)"
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "zipkin-server.*--server.port=$PORT"; then
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  echo "zipkin: stopped pid $pid" >&2
else
  echo "zipkin: nothing of start-zipkin.sh runs on port $PORT" >&2
fi
rm -rf "$RUN"
