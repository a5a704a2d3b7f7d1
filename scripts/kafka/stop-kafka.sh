#!/usr/bin/env bash
# Stops the broker that start-kafka.sh started on KAFKA_PORT (default 9092): SIGTERM for a
# clean controlled shutdown, up to 30 s, then SIGKILL. Removes that run's folder (data,
# logs). Exits 0 when nothing is running.
set -euo pipefail

K="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
PORT="${KAFKA_PORT:-9092}"
RUN_ROOT="$K/run"
CURRENT="$RUN_ROOT/kafka-$PORT"
GRACE_SECONDS=30

log() { echo "kafka: $*" >&2; }

if [ ! -L "$CURRENT" ] && [ ! -e "$CURRENT" ]; then
  log "no broker of start-kafka.sh on port $PORT; nothing to stop"
  exit 0
fi

dir="$(readlink -f "$CURRENT" || true)"
pid="$(cat "$CURRENT/broker.pid" 2>/dev/null || true)"
cmdline=""
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
  cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
fi

# Only signal the pid if it is still that run's kafka.Kafka JVM (pids get recycled).
if [[ -n "$cmdline" && "$cmdline" == *"kafka.Kafka $dir/server.properties"* ]]; then
  log "stopping broker pid $pid (SIGTERM)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq $((GRACE_SECONDS * 5))); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "still running after ${GRACE_SECONDS}s; SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
  log "stopped"
else
  log "broker on port $PORT was not running; cleaning up"
fi

rm -rf "$dir" "$CURRENT"
# run/ goes away once no other broker is left in it; start-kafka.sh sets
# KAFKA_KEEP_RUN_ROOT when it calls this while holding its lock file in run/.
if [ -z "${KAFKA_KEEP_RUN_ROOT:-}" ] && [ -z "$(ls -A "$RUN_ROOT" | grep -v '\.lock$' || true)" ]; then
  rm -rf "$RUN_ROOT"
fi
