#!/usr/bin/env bash
# Starts a real Zipkin server (io.zipkin:zipkin-server, its executable jar from Maven
# Central, in-memory storage) for the tracing tests and for looking at traces locally.
# No Docker.
#
#   bash scripts/zipkin/start-zipkin.sh     # prints ZIPKIN_URL=http://127.0.0.1:9411 (eval-able)
#   bash scripts/zipkin/stop-zipkin.sh
#
# Env: ZIPKIN_PORT (9411), ZIPKIN_JAVA_OPTS (-Xms64m -Xmx256m), ZIPKIN_START_TIMEOUT
#      seconds (90), JAVA (java; 17+), MVN (mvn).
# Stdout carries only KEY=value lines (ZIPKIN_URL, ZIPKIN_PID, ZIPKIN_REUSED); messages go
# to stderr. Exit 0 when a Zipkin is ready, including one this script started earlier.
#
# Measured here (2 cores, OpenJDK 17): launch to ready 3-7 s; RSS 206 MiB when ready, 227 MiB
# after the tracing tests.
set -euo pipefail

Z="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
VERSION=3.4.3
PORT="${ZIPKIN_PORT:-9411}"
JAVA="${JAVA:-java}"
MVN="${MVN:-mvn}"
JAVA_OPTS="${ZIPKIN_JAVA_OPTS:--Xms64m -Xmx256m}"
TIMEOUT="${ZIPKIN_START_TIMEOUT:-90}"
JAR="$Z/lib/zipkin-server-$VERSION-exec.jar"
RUN="$Z/run/zipkin-$PORT"

log() { echo "zipkin: $*" >&2; }
healthy() { curl -fsS "http://127.0.0.1:$PORT/health" 2>/dev/null | grep -q '"UP"'; }
# A pid only counts as ours if it is the Zipkin jar's JVM, so a recycled pid is never ours.
is_ours() {
  local pid="$1"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "-jar $JAR --server.port=$PORT"
}
report() {
  echo "ZIPKIN_URL=http://127.0.0.1:$PORT"
  echo "ZIPKIN_PID=$1"
  echo "ZIPKIN_REUSED=$2"
}

mkdir -p "$Z/run" "$Z/lib"
# Serialises concurrent starts on the same port.
exec 9>"$Z/run/zipkin-$PORT.lock"
flock 9

pid="$(cat "$RUN/zipkin.pid" 2>/dev/null || true)"
if is_ours "$pid" && healthy; then
  log "already running on 127.0.0.1:$PORT (pid $pid)"
  report "$pid" 1
  exit 0
fi
if is_ours "$pid"; then kill -TERM "$pid" 2>/dev/null || true; sleep 1; fi
if timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT" 2>/dev/null; then
  log "port $PORT is taken by something else; set ZIPKIN_PORT"
  exit 1
fi

if [ ! -f "$JAR" ]; then
  log "fetching io.zipkin:zipkin-server:$VERSION:exec from Maven Central"
  "$MVN" -B -q dependency:copy -Dartifact="io.zipkin:zipkin-server:$VERSION:jar:exec" \
    -DoutputDirectory="$Z/lib" >&2
fi

rm -rf "$RUN" && mkdir -p "$RUN"
# setsid and no inherited stdio, so that the server outlives this script and holds no
# caller's pipe open; 9>&-, or it would hold the start lock for its lifetime and the next
# start would wait on it forever.
# shellcheck disable=SC2086 # JAVA_OPTS is a list of JVM flags
STORAGE_TYPE=mem setsid nohup "$JAVA" $JAVA_OPTS -jar "$JAR" --server.port="$PORT" \
  </dev/null >"$RUN/zipkin.log" 2>&1 9>&- &
echo $! >"$RUN/zipkin.pid"
started=$(date +%s)
until healthy; do
  if ! kill -0 "$(cat "$RUN/zipkin.pid")" 2>/dev/null; then
    log "exited while starting; its log:"; tail -30 "$RUN/zipkin.log" >&2; exit 1
  fi
  if [ $(($(date +%s) - started)) -ge "$TIMEOUT" ]; then
    log "not ready after ${TIMEOUT}s"; exit 1
  fi
  sleep 0.5
done
log "ready on 127.0.0.1:$PORT in $(($(date +%s) - started)) s"
report "$(cat "$RUN/zipkin.pid")" 0
