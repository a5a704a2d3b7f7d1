/**
 * The performance measurements of the design, in sequence: RPC overhead against a bare
 * connect-node handler, the GenerateToken write path against pgbench (the service's
 * peak RSS sampled meanwhile), and cold starts on the embedded database. The service and
 * the bare handler each run in a Node process of their own; the load generator runs
 * here. Prints a results table
 * (markdown) and the ratios as JSON. Needs DATABASE_URL naming a PostgreSQL server; the
 * bench creates a database of its own there and drops it at the end. With KAFKA_BROKERS
 * set, the event targets are measured too, on that broker (events.ts).
 *
 * WatchConsultation streams are measured too (watch.ts): many open on one copy of the
 * service while another copy changes their consultations; `npm run bench -- watch` runs
 * only that measurement.
 *
 * `npm run bench -- scale` runs only the scale measurement (scale.ts): every call and
 * background pass on a database with a clinic's two years of history against the same on
 * one without, in the same run; BENCH_SCALE_PLANS=<file> also writes the SQL of each on the
 * seeded database, with its plans, into that file.
 *
 *   DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres npm run bench
 *   KAFKA_BROKERS=127.0.0.1:9092 DATABASE_URL=... npm run bench
 *   DATABASE_URL=... npm run bench -- watch
 *   DATABASE_URL=... npm run bench -- startup
 *   KAFKA_BROKERS=127.0.0.1:9092 DATABASE_URL=... npm run bench -- events
 *   DATABASE_URL=... [BENCH_SCALE_PLANS=/tmp/plans.txt] npm run bench -- scale
 *   DATABASE_URL=... npm run bench -- rate-limit
 *   DATABASE_URL=... npm run bench -- audit-seal
 *
 * `npm run bench -- audit-seal` runs only the cost of the audit trail's seals
 * (audit-seal-cost.ts): an entry's insert with and without their column and index, and
 * the sealer's pass and a verification over 100 000 entries.
 *
 * `npm run bench -- rate-limit` runs only the cost of the rate limit shared by the
 * copies (rate-limit.ts): the read with the limit off, counted in memory, and counted in
 * the database, alternately.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { measureAuditSealCost } from './audit-seal-cost.js';
import { autovacuumText } from './autovacuum.js';
import { REPOSITORY_ROOT, rssBytes } from './child.js';
import type { CpuShares } from './cpu.js';
import { type EventsResult, measureEvents } from './events.js';
import {
  consultationId,
  createBenchDatabase,
  type Service,
  seedConsultations,
  serviceFormText,
  startService,
  startServiceInProcess,
} from './fixture.js';
import { type LatencySummary, type LoadSummary, round } from './load.js';
import { mib, sampleRss } from './memory.js';
import { measureRateLimitCost, type RateLimitCostResult } from './rate-limit.js';
import { measureRpcOverhead, type RpcOverheadResult } from './rpc-overhead.js';
import { measureScale, type ScaleResult, type ScaleStep } from './scale.js';
import { measureStartup, type StartupRun } from './startup.js';
import { measureWatch, type WatchResult } from './watch.js';
import { measureWritePath, recordGenerateTokenSql, type WritePathResult } from './write-path.js';

/** Seconds each measured round lasts (BENCH_SECONDS overrides), after a 2 s warm-up. */
const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const WARMUP_MS = 2_000;
const CONSULTATIONS = 1_000;
const RPC_CONCURRENCY = 64;
/** As many callers as the service has database connections (DATABASE_POOL_SIZE's default). */
const WRITE_CONCURRENCY = 10;
/** Rounds of each target in measurements 1 and 2, alternating (BENCH_ROUNDS overrides). */
const ROUNDS = Number(process.env.BENCH_ROUNDS) || 2;
const STARTUP_RUNS = 3;
/** The event measurements (KAFKA_BROKERS only): rates and length as the design states them. */
const EVENTS = {
  publishRate: 200,
  consumeRate: 500,
  warmupMs: 2_000,
  durationMs: 10_000,
  waitMs: 30_000,
  drainEvents: 20_000,
} as const;

/**
 * The watch measurement: streams open on copy A, changes through copy B (fixed, as the
 * design states them; BENCH_SECONDS does not apply). Its consultations are numbered after
 * the other measurements' (3 × streams of them: the memory measurement opens three times as many).
 */
const WATCH = {
  first: CONSULTATIONS + 1,
  streams: 1_000,
  changeRate: 50,
  warmupMs: 3_000,
  durationMs: 20_000,
  deliveryTimeoutMs: 5_000,
} as const;

/**
 * The scale measurement (scale.ts): the history of one clinic, and how many calls of each
 * step are timed on each database (rounds × per round; a batch stops early after its
 * budget, so a step that takes seconds is timed fewer times rather than for minutes).
 */
const SCALE = {
  history: { consultations: 100_000, auditEntries: 1_000_000, days: 730 },
  /** More rounds, more calls per step (`BENCH_SCALE_ROUNDS`): steadier p99s, a longer run. */
  rounds: Number(process.env.BENCH_SCALE_ROUNDS) || 4,
  visitsPerRound: 100,
  readsPerRound: 150,
  passesPerRound: 40,
  batchBudgetMs: 20_000,
  warmupCalls: 20,
  depth: { history: 25_000, audit: 10_000 },
} as const;

const TARGETS = {
  rpcRatio: 0.6,
  /** The service's p99 at most this many times the bare handler's (DESIGN.md §8). */
  rpcP99Factor: 1.5,
  writeRatio: 0.6,
  writeRoundTrips: 3,
  rssMiB: 256,
  startupMs: 1_000,
  publishP99Ms: 100,
  consumeP99Ms: 250,
  consumeRowsPerSecond: 1_500,
  watchP99Ms: 200,
  watchKiBPerStream: 50,
  scaleRatio: 1.2,
} as const;

interface Results {
  readonly rpc: RpcOverheadResult;
  /** The service process's RSS right after it started, before any load. */
  readonly idleRssMiB: number;
  /** The service process's peak RSS during the RPC overhead load. */
  readonly rpcRssMiB: number;
  /** …and during both loads (RPC overhead, then write path). */
  readonly rssMiB: number;
  /** The statements (round trips) the service sent for one GenerateToken, in order. */
  readonly statements: readonly string[];
  readonly write: WritePathResult;
  readonly startup: readonly StartupRun[];
  /** Only when KAFKA_BROKERS is set. */
  readonly events: EventsResult | undefined;
  readonly watch: WatchResult;
}

async function main(): Promise<void> {
  const serverUrl = process.env.DATABASE_URL;
  if (!serverUrl) throw new Error('set DATABASE_URL to a PostgreSQL server (see bench/README.md)');
  const only = process.argv.slice(2).join(' ');
  const modes = ['watch', 'scale', 'startup', 'events', 'rate-limit', 'audit-seal'];
  if (only !== '' && !modes.includes(only)) {
    throw new Error(`unknown arguments: ${only} (npm run bench [-- ${modes.join(' | ')}])`);
  }
  if (only === 'startup') {
    for (const run of await measureStartup(STARTUP_RUNS)) {
      console.log(
        `start to ready, embedded, fresh folder: ${run.ms} ms (RSS ${run.rssMiB} MiB); restart on it: ${run.restartMs} ms (target < ${TARGETS.startupMs} ms)`,
      );
    }
    return;
  }
  if (only === 'scale') {
    reportScale(
      await measureScale({ ...SCALE, serverUrl, plansFile: process.env.BENCH_SCALE_PLANS }),
    );
    return;
  }
  const database = await createBenchDatabase(serverUrl);
  let service: Service | undefined;
  try {
    if (only === 'watch') {
      reportWatchOnly(await runWatch(database.url));
      return;
    }
    if (only === 'events') {
      reportEventsOnly(await runEvents(database.url));
      return;
    }
    if (only === 'rate-limit') {
      reportRateLimitCost(await runRateLimitCost(database.url));
      return;
    }
    if (only === 'audit-seal') {
      await (await startServiceInProcess(database.url)).app.stop();
      log(`audit seals: ${ROUNDS} x (entry insert before, after), then 100 000 entries sealed`);
      const result = await measureAuditSealCost({
        databaseUrl: database.url,
        rounds: ROUNDS,
        seconds: SECONDS,
      });
      console.log(
        `\nAudit entry inserts/s, before the seals ${result.before.tps}, with them ${result.after.tps}: ratio ${result.insertRatio}`,
      );
      console.log(
        `Sealed ${result.entries} entries in ${result.seals} seals: ${result.sealMs} ms; verified in ${result.verifyMs} ms`,
      );
      console.log(`\n${JSON.stringify({ detail: { auditSeal: result } }, null, 2)}`);
      return;
    }

    // In this process first: it migrates the database, and once seeded, shows the SQL
    // of one GenerateToken at the pg driver (which the service's own process cannot).
    log('migrating, seeding and recording GenerateToken SQL in-process');
    const inProcess = await startServiceInProcess(database.url);
    let statements: string[];
    try {
      await seedConsultations(database.url, CONSULTATIONS);
      statements = await recordGenerateTokenSql({
        serviceUrl: inProcess.baseUrl,
        token: inProcess.doctorToken,
        consultationId: consultationId(1),
      });
    } finally {
      await inProcess.app.stop();
    }

    log(`starting the service: ${serviceFormText()}`);
    service = await startService(database.url);
    const idleRssMiB = mib(rssBytes(service.process.pid));
    const consultationIds = Array.from({ length: CONSULTATIONS }, (_, i) => consultationId(i + 1));
    const common = {
      serviceUrl: service.baseUrl,
      servicePid: service.process.pid,
      token: service.doctorToken,
      consultationIds,
      rounds: ROUNDS,
      warmupMs: WARMUP_MS,
      durationMs: SECONDS * 1000,
    };

    log(
      `rpc overhead: ${ROUNDS} x (baseline, floor, service, grouped floor), ${RPC_CONCURRENCY} callers`,
    );
    const rss = sampleRss(service.process.pid);
    const rpc = await measureRpcOverhead({
      ...common,
      databaseUrl: database.url,
      concurrency: RPC_CONCURRENCY,
    });
    const rpcRssMiB = rss.peak();

    log(
      `write path: ${ROUNDS} x (GenerateToken, its floor, pgbench), ${WRITE_CONCURRENCY} callers`,
    );
    const write = await measureWritePath({
      ...common,
      databaseUrl: database.url,
      concurrency: WRITE_CONCURRENCY,
    });
    const rssMiB = rss.stop();
    await service.process.stop();
    service = undefined;

    const watch = await runWatch(database.url);

    let events: EventsResult | undefined;
    if (process.env.KAFKA_BROKERS) events = await runEvents(database.url, consultationIds);
    else log('KAFKA_BROKERS is not set: the event measurements are skipped');

    log(`startup: ${STARTUP_RUNS} cold starts on the embedded database`);
    const startup = await measureStartup(STARTUP_RUNS);
    report({ rpc, idleRssMiB, rpcRssMiB, rssMiB, statements, write, startup, events, watch });
  } finally {
    await service?.process.stop();
    await database.drop();
  }
}

/** Measurement 5 (watch.ts) on `databaseUrl`: it starts its own two copies of the service. */
function runWatch(databaseUrl: string): Promise<WatchResult> {
  log(
    `watch: ${WATCH.streams} WatchConsultation streams on copy A, ${WATCH.changeRate} changes/s through copy B for ${WATCH.durationMs / 1000} s; memory with 0, ${WATCH.streams}, ${2 * WATCH.streams} streams`,
  );
  return measureWatch({ ...WATCH, databaseUrl });
}

function report(r: Results): void {
  const { rpc, write } = r;
  const latency = (s: LoadSummary) => `p50 ${s.p50Ms} / p99 ${s.p99Ms} ms`;
  const cpu = (s: LoadSummary) =>
    `server process CPU ${s.serverCpuPercent}%, load generator ${s.cpuPercent}%`;
  const rows = [
    ['Measurement', 'Service', 'Baseline or comparison', 'Ratio', 'Target', 'Result'],
    [
      `GetConsultationStatus throughput, ${RPC_CONCURRENCY} callers`,
      `${rpc.service.rps} calls/s (${cpu(rpc.service)})`,
      `${rpc.baseline.rps} calls/s, bare handler (${cpu(rpc.baseline)})`,
      `${rpc.ratio}`,
      `ratio ≥ ${TARGETS.rpcRatio}`,
      met(rpc.ratio >= TARGETS.rpcRatio),
    ],
    [
      'GetConsultationStatus latency',
      latency(rpc.service),
      latency(rpc.baseline),
      `p99 ×${round(rpc.service.p99Ms / rpc.baseline.p99Ms, 2)}`,
      `p99 ≤ ${TARGETS.rpcP99Factor} × the bare handler's`,
      met(rpc.service.p99Ms <= TARGETS.rpcP99Factor * rpc.baseline.p99Ms),
    ],
    [
      'GetConsultationStatus, the floor: its statement on pg under the bare handler',
      `${rpc.floor.rps} calls/s (${latency(rpc.floor)}; ${cpu(rpc.floor)})`,
      `${rpc.baseline.rps} calls/s, bare handler`,
      `${rpc.floorRatio}`,
      'what any service could reach here',
      '',
    ],
    [
      'GetConsultationStatus, the floor with its audit entries group-committed (experiment)',
      `${rpc.groupedFloor.rps} calls/s (${latency(rpc.groupedFloor)}; ${cpu(rpc.groupedFloor)})`,
      `${rpc.baseline.rps} calls/s, bare handler`,
      `${rpc.groupedFloorRatio}`,
      'what group commit would let a service reach',
      '',
    ],
    [
      `GenerateToken throughput, ${WRITE_CONCURRENCY} callers`,
      `${write.service.rps} calls/s (${latency(write.service)}; ${cpu(write.service)})`,
      `${write.pgbench.tps} tps (pgbench, avg ${write.pgbench.latencyAvgMs} ms)`,
      `${write.ratio}`,
      `ratio ≥ ${TARGETS.writeRatio}`,
      met(write.ratio >= TARGETS.writeRatio),
    ],
    [
      'GenerateToken, the floor: its two statements and the token on pg, nothing else',
      `${write.floor.rps} calls/s (${latency(write.floor)}; ${cpu(write.floor)})`,
      `${write.pgbench.tps} tps (pgbench)`,
      `${write.floorRatio}`,
      'what any service could reach here',
      '',
    ],
    [
      'GenerateToken round trips to PostgreSQL per call',
      `${r.statements.length} (${r.statements.join(', ')})`,
      '8 (bench/generate-token.sql, the reference)',
      '',
      `≤ ${TARGETS.writeRoundTrips}`,
      met(r.statements.length <= TARGETS.writeRoundTrips),
    ],
    [
      'Peak RSS of the service process, RPC overhead and write-path loads',
      `${r.rssMiB} MiB (${r.rpcRssMiB} MiB during the RPC overhead load)`,
      `${r.idleRssMiB} MiB (service process right after start, before any load)`,
      '',
      `< ${TARGETS.rssMiB} MiB`,
      met(r.rssMiB < TARGETS.rssMiB),
    ],
    ...r.startup.map((run, i) => [
      `Start to ready, embedded database, run ${i + 1}`,
      `${run.ms} ms (RSS ${run.rssMiB} MiB)`,
      `${run.restartMs} ms (restart on that folder)`,
      '',
      `< ${TARGETS.startupMs} ms`,
      met(run.ms < TARGETS.startupMs),
    ]),
    ...eventRows(r.events),
    ...watchRows(r.watch),
  ];
  console.log(`\nGenerateToken's SQL: ${r.statements.join(', ')}\n`);
  printTable(rows);
  const ratios = {
    rpcThroughputRatio: rpc.ratio,
    rpcServiceP99Ms: rpc.service.p99Ms,
    rpcP99Ratio: round(rpc.service.p99Ms / rpc.baseline.p99Ms, 2),
    rpcFloorRatio: rpc.floorRatio,
    rpcGroupedFloorRatio: rpc.groupedFloorRatio,
    writePathRatio: write.ratio,
    writeFloorRatio: write.floorRatio,
    writeRoundTrips: r.statements.length,
    peakRssMiB: r.rssMiB,
    rpcPeakRssMiB: r.rpcRssMiB,
    idleRssMiB: r.idleRssMiB,
    startupMs: r.startup.map((run) => run.ms),
    restartMs: r.startup.map((run) => run.restartMs),
    publishP99Ms: r.events?.publish.latency.p99Ms ?? null,
    consumeP99Ms: finiteOrNull(r.events?.consume.latency.p99Ms),
    consumeRowsPerSecond: r.events?.drain.rowsPerSecond ?? null,
    ...watchRatios(r.watch),
    targets: TARGETS,
    detail: {
      rpc,
      watch: r.watch,
      write: { service: write.service, floor: write.floor, pgbench: write.pgbench },
      events: r.events && {
        ...r.events,
        consume: {
          ...r.events.consume,
          latency: {
            ...r.events.consume.latency,
            p50Ms: finiteOrNull(r.events.consume.latency.p50Ms),
            p99Ms: finiteOrNull(r.events.consume.latency.p99Ms),
            maxMs: finiteOrNull(r.events.consume.latency.maxMs),
          },
        },
      },
    },
  };
  console.log(`\n${JSON.stringify(ratios, null, 2)}`);
  const saved = saveResults(ratios);
  console.log(`\nsaved in ${saved}: commit it, so that later changes are compared with it`);
}

/**
 * A run's figures as bench/results/<date><suffix>.json (a later run that day replaces it):
 * the full run's without a suffix, the scale measurement's with `-scale`.
 */
function saveResults(ratios: object, suffix = ''): string {
  const dir = join(REPOSITORY_ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${new Date().toISOString().slice(0, 10)}${suffix}.json`);
  writeFileSync(
    file,
    `${JSON.stringify({ measuredAt: new Date().toISOString(), ...ratios }, null, 2)}\n`,
  );
  return file;
}

const met = (ok: boolean) => (ok ? 'met' : '**missed**');

/** A results table in markdown: a header row, then the measurements. */
function printTable(rows: readonly (readonly string[])[]): void {
  const [header, ...body] = rows.map((row) => `| ${row.join(' | ')} |`);
  const rule = `|${'---|'.repeat(rows[0]?.length ?? 0)}`;
  console.log([header, rule, ...body].join('\n'));
}

/** `npm run bench -- watch`: the watch measurement's rows and ratios alone. */
/**
 * The event measurements on KAFKA_BROKERS. Alone (`-- events`), the database is migrated
 * by a first start of the service and seeded here.
 */
async function runEvents(databaseUrl: string, seeded?: readonly string[]): Promise<EventsResult> {
  const brokers = process.env.KAFKA_BROKERS;
  if (!brokers) throw new Error('set KAFKA_BROKERS to measure the events (see bench/README.md)');
  let consultationIds = seeded;
  if (!consultationIds) {
    await (await startService(databaseUrl)).process.stop();
    await seedConsultations(databaseUrl, CONSULTATIONS);
    consultationIds = Array.from({ length: CONSULTATIONS }, (_, i) => consultationId(i + 1));
  }
  log(
    `events on ${brokers}: GenerateToken ${EVENTS.publishRate}/s, then appointment.created ${EVENTS.consumeRate}/s, ${EVENTS.durationMs / 1000} s each`,
  );
  return measureEvents({ ...EVENTS, databaseUrl, brokers, consultationIds });
}

function reportEventsOnly(events: EventsResult): void {
  console.log('');
  printTable([
    ['Measurement', 'Service', 'Baseline or comparison', 'Ratio', 'Target', 'Result'],
    ...eventRows(events),
  ]);
  console.log(`\n${JSON.stringify({ detail: { events } }, null, 2)}`);
}

async function runRateLimitCost(databaseUrl: string): Promise<RateLimitCostResult> {
  log('migrating and seeding');
  const inProcess = await startServiceInProcess(databaseUrl);
  try {
    await seedConsultations(databaseUrl, CONSULTATIONS);
  } finally {
    await inProcess.app.stop();
  }
  log(
    `rate-limit cost: ${ROUNDS} x (off, memory, postgres), ${RPC_CONCURRENCY} callers, then one caller`,
  );
  return measureRateLimitCost({
    databaseUrl,
    consultations: CONSULTATIONS,
    concurrency: RPC_CONCURRENCY,
    rounds: ROUNDS,
    warmupMs: WARMUP_MS,
    durationMs: SECONDS * 1000,
  });
}

function reportRateLimitCost(result: RateLimitCostResult): void {
  console.log('');
  const rows = (['callers', 'oneCaller'] as const).flatMap((callers) => {
    const r = result[callers];
    const who = callers === 'callers' ? `${RPC_CONCURRENCY} callers` : 'one caller';
    return (['off', 'memory', 'postgres'] as const).map((setup) => [
      `GetConsultationStatus, ${who}, limit ${setup === 'off' ? 'off' : `counted in ${setup}`}`,
      `${round(r[setup].rps, 0)} calls/s`,
      `p50 ${r[setup].p50Ms} / p99 ${r[setup].p99Ms} ms`,
      setup === 'off' ? '1' : String(setup === 'memory' ? r.memoryRatio : r.postgresRatio),
    ]);
  });
  printTable([['Measurement', 'Throughput', 'Latency', 'Ratio to off'], ...rows]);
  console.log(`\n${JSON.stringify({ detail: { rateLimit: result } }, null, 2)}`);
}

function reportWatchOnly(watch: WatchResult): void {
  console.log('');
  printTable([
    ['Measurement', 'Service', 'Baseline or comparison', 'Ratio', 'Target', 'Result'],
    ...watchRows(watch),
  ]);
  const { watchP99Ms, watchKiBPerStream } = TARGETS;
  const ratios = { ...watchRatios(watch), targets: { watchP99Ms, watchKiBPerStream } };
  console.log(`\n${JSON.stringify({ ...ratios, detail: { watch } }, null, 2)}`);
}

/**
 * Memory per stream is judged on the larger of the two later steps (N → 2N and 2N → 3N
 * streams), so that a lucky reading of one does not pass it. The first step (0 → N) is
 * shown but not judged: it also holds what A compiles and optimises once, which stays
 * when the streams close (bench/README.md, 2026-11-29).
 */
const kiBPerStream = (w: WatchResult) => Math.max(w.rssKiBPerStream[1], w.rssKiBPerStream[2]);

function watchRatios(w: WatchResult) {
  return { watchP99Ms: w.latency.p99Ms, watchKiBPerStream: kiBPerStream(w) };
}

/**
 * Processes outside the run used more than a fifth of a core while it measured: its
 * latencies are then partly theirs (the copies, PostgreSQL and the bench share the cores).
 */
const busyMachine = (w: WatchResult) =>
  w.cpu.others > 20 ? ` (other processes used ${w.cpu.others}% of a core meanwhile)` : '';

/** Rows of the watch measurement (watch.ts). */
function watchRows(w: WatchResult): string[][] {
  const latency = (s: LatencySummary) => `p50 ${s.p50Ms} / p99 ${s.p99Ms} / max ${s.maxMs} ms`;
  const mib = (key: 'rssMiB' | 'heapUsedMiB') => w.memory.map((sample) => sample[key]).join(' / ');
  const [first, second, third] = w.rssKiBPerStream;
  const n = w.streams;
  return [
    [
      `WatchConsultation: change through copy B → view received, ${w.streams} streams open on copy A (${w.connections} HTTP/2 connections), ${w.change} at ${WATCH.changeRate}/s for ${WATCH.durationMs / 1000} s`,
      `${latency(w.latency)} (${w.latency.count} changes, ${w.changesPerSecond}/s; ${w.beforeAnswer} views before the answer, ${w.missed} not seen within ${WATCH.deliveryTimeoutMs / 1000} s; CPU copy A ${w.cpu.watched}%, copy B ${w.cpu.changing}%, bench process ${w.cpu.bench}%, PostgreSQL ${w.cpu.postgres}%, other processes ${w.cpu.others}%; machine ${w.cpu.machine}% of all cores; event loop delay p99 / max: copy A ${w.eventLoopDelay.watched.p99Ms} / ${w.eventLoopDelay.watched.maxMs} ms, bench ${w.eventLoopDelay.bench.p99Ms} / ${w.eventLoopDelay.bench.maxMs} ms)`,
      `from the change's send: ${latency(w.fromSend)}; the ${w.change} calls: p50 ${w.calls.p50Ms} / p99 ${w.calls.p99Ms} ms; copy A's own lag (database change → view sent): mean ${w.serviceLag.meanMs} ms, p99 ≤ ${w.serviceLag.p99AtMostMs} ms`,
      '',
      `p99 < ${TARGETS.watchP99Ms} ms`,
      met(w.latency.p99Ms < TARGETS.watchP99Ms && w.missed === 0) + busyMachine(w),
    ],
    [
      'Memory per open WatchConsultation stream, copy A',
      `${second} KiB RSS (${n} → ${2 * n} streams), ${third} KiB (${2 * n} → ${3 * n}); the first ${n}: ${first} KiB`,
      `V8 heap used after a full GC (live): ${w.heapKiBPerStream.join(' / ')} KiB per stream; with 0 / ${n} / ${2 * n} / ${3 * n} / ${n} again streams: RSS ${mib('rssMiB')} MiB, heap used ${mib('heapUsedMiB')} MiB`,
      '',
      `< ${TARGETS.watchKiBPerStream} KiB`,
      met(kiBPerStream(w) < TARGETS.watchKiBPerStream),
    ],
  ];
}

/** Rows of the event measurements; none when they did not run. */
function eventRows(events: EventsResult | undefined): string[][] {
  if (!events) return [];
  const { publish, consume, drain } = events;
  const ms = (value: number) =>
    Number.isFinite(value) ? `${value}` : `> ${EVENTS.waitMs / 1000} s`;
  const latency = (s: LatencySummary) =>
    `p50 ${ms(s.p50Ms)} / p99 ${ms(s.p99Ms)} / max ${ms(s.maxMs)} ms`;
  return [
    [
      `Outbox commit → received from Kafka, GenerateToken at ${EVENTS.publishRate}/s for ${EVENTS.durationMs / 1000} s`,
      `${latency(publish.latency)} (${publish.latency.count} events, ${publish.eventsPerSecond}/s; server process CPU ${publish.serverCpuPercent}%)`,
      `GenerateToken calls: p50 ${publish.calls.p50Ms} / p99 ${publish.calls.p99Ms} ms (${publish.calls.count} calls)`,
      '',
      `p99 < ${TARGETS.publishP99Ms} ms`,
      met(publish.latency.p99Ms < TARGETS.publishP99Ms),
    ],
    [
      `appointment.created sent → consultation row, ${EVENTS.consumeRate}/s for ${EVENTS.durationMs / 1000} s`,
      `${latency(consume.latency)} (${consume.applied} of ${consume.sent} made a row within ${EVENTS.waitMs / 1000} s, ${consume.appliedPerSecond} rows/s; server process CPU ${consume.serverCpuPercent}%)`,
      `sent ${consume.sentPerSecond}/s, acknowledged p50 ${consume.ackLatency.p50Ms} / p99 ${consume.ackLatency.p99Ms} ms`,
      '',
      `p99 < ${TARGETS.consumeP99Ms} ms`,
      met(consume.latency.p99Ms < TARGETS.consumeP99Ms),
    ],
    [
      `appointment.created, a backlog of ${drain.events} drained`,
      `${drain.rowsPerSecond} rows/s (${drain.applySeconds} s from the first row to the last; server process CPU ${drain.serverCpuPercent}%)`,
      `sent in ${drain.sendSeconds} s`,
      '',
      `≥ ${TARGETS.consumeRowsPerSecond} rows/s`,
      met(drain.rowsPerSecond >= TARGETS.consumeRowsPerSecond),
    ],
  ];
}

/**
 * `npm run bench -- scale`: each step's latency on both databases and their ratio, judged
 * on p50 and p99 alike; then the steps' statements that read many rows on the seeded
 * database (with BENCH_SCALE_PLANS), and the figures as JSON, saved as
 * bench/results/<date>-scale.json.
 */
function reportScale(r: ScaleResult): void {
  const latency = (s: LatencySummary) => `${s.p50Ms} / ${s.p99Ms} ms`;
  const calls = (step: ScaleStep) =>
    step.empty.count === step.seeded.count
      ? `${step.empty.count}`
      : `${step.empty.count} / ${step.seeded.count}`;
  const rows = [
    [
      'Step (calls per database)',
      'Empty p50 / p99',
      'Seeded p50 / p99',
      'Ratio p50',
      'Ratio p99',
      'Target',
      'Result',
    ],
    ...r.steps.map((step) => [
      `${step.step} (${calls(step)})`,
      latency(step.empty),
      latency(step.seeded),
      `${step.p50Ratio}`,
      `${step.p99Ratio}`,
      `≤ ${TARGETS.scaleRatio}`,
      met(scaleMet(step)),
    ]),
  ];
  const { empty, seeded } = r.depths;
  console.log(
    `\nSeeded: ${describeRows(r.rows.seeded)} (seeded in ${r.seedSeconds} s). Empty: ${describeRows(r.rows.empty)}.`,
  );
  console.log(
    `Deep pages after row ${seeded.history} (history) and ${seeded.audit} (audit trail) on the seeded database, ${empty.history} and ${empty.audit} on the empty one.`,
  );
  console.log(
    `Service code: ${r.source.commit}${r.source.uncommitted.length > 0 ? `, with uncommitted changes: ${r.source.uncommitted.join(', ')}` : ''}.`,
  );
  console.log(`CPU while the calls were timed: ${describeCpu(r.cpu.calls)}.`);
  console.log(`CPU while the passes were timed: ${describeCpu(r.cpu.passes)}.`);
  const { server, standIn } = r.autovacuum;
  const work = standIn && {
    'on the empty database': standIn.empty,
    'on the seeded one': standIn.seeded,
  };
  console.log(`Autovacuum: ${autovacuumText(server, work)}.\n`);
  printTable(rows);
  for (const line of heavyStatements(r)) console.log(line);
  const missed = r.steps.filter((step) => !scaleMet(step)).map((step) => step.step);
  const figures = {
    scaleMissed: missed,
    scaleRatios: Object.fromEntries(
      r.steps.map((step) => [step.step, { p50: step.p50Ratio, p99: step.p99Ratio }]),
    ),
    targets: { scaleRatio: TARGETS.scaleRatio },
    detail: { ...r, plans: r.plans ?? null },
  };
  console.log(`\n${JSON.stringify(figures, null, 2)}`);
  console.log(`\nsaved in ${saveResults(figures, '-scale')} (${r.seconds} s in all)`);
}

/** The run's CPU use and the rest of the machine's, warning when the rest was busy. */
function describeCpu(cpu: CpuShares): string {
  const busy =
    cpu.others > 20 ? ' (**other processes were busy: the p99s are partly theirs**)' : '';
  return `bench process ${cpu.bench}%, services ${cpu.services}%, PostgreSQL ${cpu.postgres}%, other processes ${cpu.others}% of a core; machine ${cpu.machine}% of all cores${busy}`;
}

/** Both ratios within the target. */
const scaleMet = (step: ScaleStep) =>
  step.p50Ratio <= TARGETS.scaleRatio && step.p99Ratio <= TARGETS.scaleRatio;

const describeRows = (rows: Readonly<Record<string, number>>) =>
  Object.entries(rows)
    .map(([table, count]) => `${count} ${table}`)
    .join(', ');

/** For each step that missed, what its plans show (only when BENCH_SCALE_PLANS was set). */
function heavyStatements(r: ScaleResult): string[] {
  if (!r.plans) return [];
  const lines = r.steps
    .filter((step) => !scaleMet(step))
    .map((step) => {
      const plan = r.plans?.[step.step];
      const heavy = plan && plan.heavy.length > 0 ? plan.heavy.join('; ') : 'none';
      return `- ${step.step}: ${heavy}`;
    });
  return lines.length > 0
    ? ['\nMissed steps, their plan nodes that read ≥ 1 000 rows on the seeded database:', ...lines]
    : [];
}

const finiteOrNull = (value: number | undefined) =>
  value === undefined || !Number.isFinite(value) ? null : value;

const log = (message: string) => console.error(`[bench] ${message}`);

await main();
