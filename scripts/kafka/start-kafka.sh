#!/usr/bin/env bash
# Starts a real single-node Apache Kafka broker (KRaft, broker+controller in one JVM) from
# the Maven Central jars, for integration tests and CI. No Docker, no Kafka distribution.
#
#   bash scripts/kafka/start-kafka.sh      # prints KAFKA_BROKERS=127.0.0.1:9092 (eval-able)
#   bash scripts/kafka/stop-kafka.sh
#
# Env: KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093), KAFKA_HEAP_OPTS (-Xms256m -Xmx512m),
#      KAFKA_START_TIMEOUT seconds (120), JAVA (java; needs 17+), MVN (mvn).
# Stdout carries only KEY=value lines (KAFKA_BROKERS, KAFKA_PID, KAFKA_REUSED); messages go
# to stderr. Exit 0 when a broker is ready, including one this script started earlier.
#
# Kafka 4.3.1: a patch release of the newest complete line on Maven Central. 4.4.0 is
# listed there too, but it is a .0 release and some of its artifacts (kafka-tools,
# kafka-streams) were reported missing there when this was chosen. kafkajs 2.2.4 finds an
# overlapping version of every API it uses on 4.x, since KIP-896 kept the old versions
# kafkajs needs. Fallback if that ever changes: 3.9.x with reload4j instead of log4j2.
# The broker runs on the machine's OpenJDK 17 (4.x needs 17+).
#
# Measured here (2 cores, 24 GB, OpenJDK 17.0.15, -Xms256m -Xmx512m, G1, 2026-11-24):
#   warm start, launch to ready (jars in lib/): 3.0-3.8 s over 8 runs (typically 3.3 s);
#     7.6 s with both cores busy (two `yes` loops).
#   lib/ deleted, jars still in ~/.m2: +2 s for copy-dependencies (5.4 s in all).
#   fully cold (empty Maven repo, 46 jars / 66 MB incl. the plugin from Central): +5 s
#     (8.7 s); the whole vitest run incl. download, start, test and stop: 15 s.
#   RSS (`ps -o rss= -p PID`): 308-332 MiB when ready, 321-343 MiB after the smoke test
#     (kafka-broker.int.test.ts); -Xms1g -Xmx1g as in Kafka's own scripts gave 375 MiB.
#   stop (SIGTERM to exit): 1.6-2.7 s.
set -euo pipefail

K="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
PORT="${KAFKA_PORT:-9092}"
CPORT="${KAFKA_CONTROLLER_PORT:-9093}"
JAVA="${JAVA:-java}"
MVN="${MVN:-mvn}"
HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
TIMEOUT="${KAFKA_START_TIMEOUT:-120}"
LIB="$K/lib"
RUN_ROOT="$K/run"
# Stable per-port name; it is a symlink to this run's fresh directory.
CURRENT="$RUN_ROOT/kafka-$PORT"

log() { echo "kafka: $*" >&2; }
now_ms() { date +%s%3N; }
port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }
# A pid only counts as ours if it is a kafka.Kafka JVM started from this run directory,
# so a recycled pid is never mistaken for the broker.
is_our_broker() {
  local pid="$1" dir="$2" cmdline
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
  [[ "$cmdline" == *"kafka.Kafka $dir/server.properties"* ]]
}
report() {
  echo "KAFKA_BROKERS=127.0.0.1:$PORT"
  echo "KAFKA_PID=$1"
  echo "KAFKA_REUSED=$2"
}

mkdir -p "$RUN_ROOT"
# Serialises concurrent starts (parallel test workers) on the same port: the second
# caller waits and then finds the first one's broker healthy.
exec 9>"$RUN_ROOT/kafka-$PORT.lock"
flock 9

if [ -L "$CURRENT" ]; then
  dir="$(readlink -f "$CURRENT" || true)"
  pid="$(cat "$CURRENT/broker.pid" 2>/dev/null || true)"
  if is_our_broker "$pid" "$dir"; then
    if port_open "$PORT" && grep -q 'Kafka Server started' "$dir/broker.log" 2>/dev/null; then
      log "already running and healthy on 127.0.0.1:$PORT (pid $pid, $dir)"
      report "$pid" 1
      exit 0
    fi
    log "broker pid $pid is running but not serving 127.0.0.1:$PORT; restarting it"
  fi
  KAFKA_PORT="$PORT" KAFKA_KEEP_RUN_ROOT=1 bash "$K/stop-kafka.sh"
fi

for p in "$PORT" "$CPORT"; do
  if port_open "$p"; then
    log "port 127.0.0.1:$p is taken by another process (not a broker of this script)"
    exit 1
  fi
done

if ! "$JAVA" -version 2>&1 | grep -qE 'version "(1[7-9]|[2-9][0-9])'; then
  log "Java 17+ is required; '$JAVA -version' says: $("$JAVA" -version 2>&1 | head -1)"
  exit 1
fi

# Jars are resolved once and reused. The stamp ties lib/ to the pom it came from, so a
# version bump re-resolves; the temp dir + rename means an interrupted download never
# leaves a half-filled lib/ that would look complete (run/ and lib/ are git-ignored).
stamp="$(sha256sum "$K/pom.xml" | cut -d' ' -f1)"
if [ "$(cat "$LIB/.pom.sha256" 2>/dev/null || true)" != "$stamp" ]; then
  log "resolving Kafka jars from Maven Central into $LIB (first run only)"
  t0=$(now_ms)
  tmp_lib="$(mktemp -d "$RUN_ROOT/lib.XXXXXX")"
  trap 'rm -rf "$tmp_lib" "$tmp_lib.log"' EXIT
  # Output only on failure: even with -q, Maven 3.8 prints stray colour codes.
  if ! "$MVN" -B -q -f "$K/pom.xml" \
    org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$tmp_lib" >"$tmp_lib.log" 2>&1; then
    cat "$tmp_lib.log" >&2
    log "maven could not resolve the jars (see above)"
    exit 1
  fi
  echo "$stamp" >"$tmp_lib/.pom.sha256"
  rm -rf "$LIB" "$tmp_lib.log"
  mv "$tmp_lib" "$LIB"
  trap - EXIT
  log "jars resolved in $(( ($(now_ms) - t0) / 1000 ))s ($(ls "$LIB"/*.jar | wc -l) jars)"
fi

# Leftovers of earlier runs on this port (killed tests, failed starts) are not reused:
# every start formats fresh storage.
rm -rf "$RUN_ROOT"/kafka-"$PORT".??????
DIR="$(mktemp -d "$RUN_ROOT/kafka-$PORT.XXXXXX")"
mkdir -p "$DIR/data" "$DIR/tmp"

cat >"$DIR/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CPORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DIR/data
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
background.threads=2
EOF

# Without a log4j2 config log4j prints errors only and the readiness line never appears.
cat >"$DIR/log4j2.properties" <<'EOF'
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
EOF

# zstd-jni and snappy unpack native libraries into java.io.tmpdir; /tmp may be noexec.
SYSPROPS=(-Dlog4j2.configurationFile="$DIR/log4j2.properties" -Djava.io.tmpdir="$DIR/tmp"
  -Dkafka.logs.dir="$DIR" -Djava.awt.headless=true)

t0=$(now_ms)
# Fresh storage each run, formatted with the same jars the broker runs (formatted
# directories are not forward-compatible). A fixed cluster id saves a JVM launch.
if ! "$JAVA" -Xmx128m -XX:TieredStopAtLevel=1 "${SYSPROPS[@]}" -cp "$LIB/*" \
  kafka.tools.StorageTool format --cluster-id 4L6g3nShT-eMCtK--X86sw \
  --config "$DIR/server.properties" >"$DIR/format.log" 2>&1; then
  cat "$DIR/format.log" >&2
  log "formatting storage failed"
  exit 1
fi

# setsid + no inherited stdio: the broker outlives this script and never holds the
# caller's pipes open (child_process.execFile would otherwise wait for it). 9>&- keeps
# the lock fd out of the JVM, or the broker would hold the start lock for its lifetime.
# shellcheck disable=SC2086 # HEAP_OPTS is a list of JVM flags
setsid nohup "$JAVA" $HEAP_OPTS -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
  -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
  "${SYSPROPS[@]}" -cp "$LIB/*" kafka.Kafka "$DIR/server.properties" \
  </dev/null >"$DIR/broker.log" 2>&1 9>&- &
PID=$!
echo "$PID" >"$DIR/broker.pid"
ln -sfn "$(basename "$DIR")" "$CURRENT"

deadline=$(( $(now_ms) + TIMEOUT * 1000 ))
while [ "$(now_ms)" -lt "$deadline" ]; do
  if ! kill -0 "$PID" 2>/dev/null; then
    tail -n 80 "$DIR/broker.log" >&2
    log "broker exited during startup; log: $DIR/broker.log"
    exit 1
  fi
  if grep -q 'Kafka Server started' "$DIR/broker.log" && port_open "$PORT"; then
    ms=$(( $(now_ms) - t0 ))
    log "ready on 127.0.0.1:$PORT in $((ms / 1000)).$(printf '%03d' $((ms % 1000)))s" \
      "(pid $PID, rss $(( $(ps -o rss= -p "$PID") / 1024 )) MiB, $DIR)"
    report "$PID" 0
    exit 0
  fi
  sleep 0.2
done

tail -n 80 "$DIR/broker.log" >&2
log "not ready after ${TIMEOUT}s; stopping it. Log: $DIR/broker.log"
kill -9 "$PID" 2>/dev/null || true
exit 1
