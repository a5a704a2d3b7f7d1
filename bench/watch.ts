/**
 * WatchConsultation at scale: N streams open on one copy of the service (A) while another
 * copy (B), on the same database, makes changes at a steady rate. Both copies are Node
 * processes of their own (`startService`, fixture.ts); the watchers and the changing
 * callers run here, in the bench's process.
 *
 * The watchers are distinct callers, as in real use: consultation n is watched by its
 * own patient (seeded with one each, `ownPatient(n)`), so WATCH_MAX_STREAMS_PER_CALLER
 * (20) never applies and A runs with its default configuration. A change is
 * ReportTechnicalIssue by that patient through B: it commits a new version of the
 * consultation, the database trigger NOTIFYs `consultation_changed`, A's one LISTEN
 * connection hands it to the consultation's watcher, which reads the consultation again
 * and sends the new view.
 *
 * 1. Memory per open stream: A's RSS (/proc) and V8 heap used (its /metrics) with 0
 *    streams, N, 2N, 3N, then N again after closing the last 2N, each read after A was
 *    left alone for a while and a full garbage collection (through A's inspector,
 *    inspector.ts). Streams were opened, changed and closed once before the reading with
 *    0, so that what the first stream loads and compiles is not counted per stream; the
 *    first N still make A compile and optimise more code once (it stays when they close),
 *    so each stream's cost is judged on the later steps, N → 2N and 2N → 3N.
 * 2. Delivery latency, with N streams open: changes at `changeRate`/s spread over the N
 *    consultations (a stride through them, so that one consultation is changed again only
 *    N changes later and no two changes of one consultation are in flight at once), a
 *    warm-up, then a measured window. From the changing call's answer arriving here to
 *    the consultation's watcher here receiving a view of the version that change made, or
 *    a newer one (changes in quick succession may come as one view). The database stamps
 *    each change (`at`), but clients never see it: both ends are this process's clock.
 *
 * BENCH_WATCH_PROFILE=<file> also records A's CPU profile over the measured window (a
 * `.cpuprofile`, for Chrome DevTools or speedscope).
 */
import { writeFile } from 'node:fs/promises';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { ConnectError } from '@connectrpc/connect';
import { TechnicalIssueType } from '../gen/video/v1/video_service_pb.js';
import { type VideoClient, videoClient } from '../test/support/clients.js';
import { cpuSeconds, rssBytes } from './child.js';
import { CLOCK_TICKS, machineCpu, postgresCpuSeconds } from './cpu.js';
import {
  consultationId,
  ownPatient,
  type Service,
  seedConsultations,
  startService,
} from './fixture.js';
import { connectInspector, freePort, type Inspector } from './inspector.js';
import { type LatencySummary, latencySummary, paced, round } from './load.js';

export interface WatchOptions {
  readonly databaseUrl: string;
  /** The number of the first consultation seeded here (3 × `streams` of them). */
  readonly first: number;
  /** Streams open during the latency run, and the step of the memory measurement. */
  readonly streams: number;
  /** Changes per second, made through copy B. */
  readonly changeRate: number;
  /** Changes made, not measured, before the measured window. */
  readonly warmupMs: number;
  readonly durationMs: number;
  /** A change its watcher has not seen this long after its answer is missed (fails the run). */
  readonly deliveryTimeoutMs: number;
}

/** Copy A's memory, settled, with some streams open. */
export interface MemorySample {
  /** Streams open on A, by its own count (watch_open_streams of its /metrics). */
  readonly openStreams: number;
  readonly rssMiB: number;
  /** After a full garbage collection: what is live. */
  readonly heapUsedMiB: number;
}

export interface WatchResult {
  readonly streams: number;
  /** HTTP/2 connections the N streams are spread over. */
  readonly connections: number;
  /** How long opening the N streams of the latency run took, each up to its first view. */
  readonly openSeconds: number;
  /** The changing RPC. */
  readonly change: string;
  /** Changes made in the measured window, per second. */
  readonly changesPerSecond: number;
  /** The changing calls of the measured window: sent → answered. */
  readonly calls: LatencySummary;
  /** The changes of the measured window: answer → view of that version (or newer) received. */
  readonly latency: LatencySummary;
  /** The same from the changing call's send (adds B's handling of the call). */
  readonly fromSend: LatencySummary;
  /** Views that arrived before their change's answer did (0 ms in `latency`). */
  readonly beforeAnswer: number;
  /** Changes, warm-up included, not seen within `deliveryTimeoutMs` of their answer. */
  readonly missed: number;
  /**
   * A's own measure (watch_delivery_lag_seconds), from the database's clock at the change
   * (inside B's transaction, before its commit) to the view sent, over the changes of the
   * measured window: the mean, and the histogram bucket that holds its 99th percentile
   * (the bucket's upper bound; Infinity above the last).
   */
  readonly serviceLag: { readonly meanMs: number; readonly p99AtMostMs: number };
  /**
   * CPU use over the measured window in % of one core: A, B, the bench's process, the
   * PostgreSQL server's processes for the bench's database, and everything else on the
   * machine (another workload that would skew the run); and the whole machine's in % of
   * all its cores.
   */
  readonly cpu: {
    readonly watched: number;
    readonly changing: number;
    readonly bench: number;
    readonly postgres: number;
    readonly others: number;
    readonly machine: number;
  };
  /** Event loop delay over the measured window (and the wait for its last views): A's, the bench's. */
  readonly eventLoopDelay: {
    readonly watched: { readonly p99Ms: number; readonly maxMs: number };
    readonly bench: { readonly p99Ms: number; readonly maxMs: number };
  };
  /** A's memory with 0, N, 2N, 3N, then N streams open again. */
  readonly memory: readonly MemorySample[];
  /** RSS growth per stream, 0 → N, N → 2N and 2N → 3N, in KiB. */
  readonly rssKiBPerStream: readonly [number, number, number];
  /** V8 heap used (after a full garbage collection) growth per stream, the same steps, in KiB. */
  readonly heapKiBPerStream: readonly [number, number, number];
}

/**
 * Streams per client connection. The service lets one HTTP/2 connection carry
 * HTTP2_MAX_CONCURRENT_STREAMS (128 by default) streams at once, and a connect-node
 * transport keeps one connection: a stream beyond the limit waits for a free place and
 * never gets its first view. So the watchers use one transport per 100 streams.
 */
const STREAMS_PER_CONNECTION = 100;
/**
 * Streams being opened at once. Each opening is a read with its audit row on A's pool
 * (10 connections, 3 s to get one), so a thousand at once would time out waiting for it.
 */
const OPENING_AT_ONCE = 50;
/** How long A is left alone before its memory is read: streams opened or closed for good. */
const SETTLE_MS = 3_000;
/** Readings of A's memory after settling, 200 ms apart; the median counts. */
const MEMORY_READINGS = 5;
const CHANGE_RPC = 'ReportTechnicalIssue';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function measureWatch(options: WatchOptions): Promise<WatchResult> {
  const n = options.streams;
  // A first: when the bench runs this measurement alone, A migrates the new database.
  // Its inspector lets the bench collect its garbage before reading its memory.
  const inspectorPort = await freePort();
  const a = await startService(options.databaseUrl, {
    NODE_OPTIONS: `--inspect=127.0.0.1:${inspectorPort}`,
  });
  let b: Service | undefined;
  let inspector: Inspector | undefined;
  const watchers = new Set<Watcher>();
  try {
    inspector = await connectInspector(inspectorPort);
    await seedConsultations(options.databaseUrl, 3 * n, {
      first: options.first,
      ownPatients: true,
    });
    b = await startService(options.databaseUrl, { MIGRATE_ON_START: 'false' });
    const views = deliveries(options.deliveryTimeoutMs);
    const changes = changer(videoClient(b.baseUrl), views);
    const open = async (from: number, count: number) => {
      const numbers = Array.from({ length: count }, (_, i) => options.first + from + i);
      const opened = await openWatchers(a, numbers, views);
      for (const watcher of opened) watchers.add(watcher);
      return opened;
    };
    const close = async (closing: readonly Watcher[]) => {
      await closeWatchers(closing);
      for (const watcher of closing) watchers.delete(watcher);
    };

    // What the first streams load and compile on A is not memory per stream: open some,
    // change them, close them, before the reading with none open.
    const warm = await open(n, Math.min(n, STREAMS_PER_CONNECTION));
    await changes.run(warm, options.changeRate, 2_000, false);
    await changes.answered();
    const missedWarm = await views.drained();
    if (missedWarm > 0) throw new Error(`${missedWarm} warm-up changes not seen in time`);
    await close(warm);

    const memory = [await settledMemory(a, inspector)];
    const started = performance.now();
    const first = await open(0, n);
    const openSeconds = (performance.now() - started) / 1000;
    memory.push(await settledMemory(a, inspector));
    const second = await open(n, n);
    memory.push(await settledMemory(a, inspector));
    const third = await open(2 * n, n);
    memory.push(await settledMemory(a, inspector));
    await close([...second, ...third]);
    memory.push(await settledMemory(a, inspector));

    const delivery = await measureDelivery(a, b, first, changes, views, options, inspector);
    checkVersions(first);
    await close(first);
    const perStream = (from: MemorySample, to: MemorySample, key: 'rssMiB' | 'heapUsedMiB') =>
      round(((to[key] - from[key]) * 1024) / n, 1);
    const [none, one, two, three] = memory as [
      MemorySample,
      MemorySample,
      MemorySample,
      MemorySample,
    ];
    const steps = (key: 'rssMiB' | 'heapUsedMiB') =>
      [perStream(none, one, key), perStream(one, two, key), perStream(two, three, key)] as const;
    return {
      streams: n,
      connections: Math.ceil(n / STREAMS_PER_CONNECTION),
      openSeconds: round(openSeconds, 2),
      change: CHANGE_RPC,
      ...delivery,
      memory,
      rssKiBPerStream: steps('rssMiB'),
      heapKiBPerStream: steps('heapUsedMiB'),
    };
  } finally {
    for (const watcher of watchers) watcher.stop.abort();
    inspector?.close();
    await b?.process.stop();
    await a.process.stop();
  }
}

/** The latency run: warm-up changes, then the measured window, then the wait for the last views. */
async function measureDelivery(
  a: Service,
  b: Service,
  watchers: readonly Watcher[],
  changes: Changer,
  views: Deliveries,
  options: WatchOptions,
  inspector: Inspector,
) {
  await changes.run(watchers, options.changeRate, options.warmupMs, false);
  const database = new URL(options.databaseUrl).pathname.slice(1);
  const profile = process.env.BENCH_WATCH_PROFILE;
  if (profile) await inspector.startProfile();
  // Reading A's metrics also restarts its event loop delay histogram (prom-client resets
  // it on each collection): the next reading covers the window and the final wait.
  const lagFrom = (await watchMetrics(a)).lag;
  const benchLoop = monitorEventLoopDelay({ resolution: 10 });
  benchLoop.enable();
  const from = {
    watched: cpuSeconds(a.process.pid),
    changing: cpuSeconds(b.process.pid),
    bench: process.cpuUsage(),
    postgres: postgresCpuSeconds([database]),
    machine: machineCpu(),
  };
  const window = await changes.run(watchers, options.changeRate, options.durationMs, true);
  const bench = process.cpuUsage(from.bench);
  const machine = machineCpu();
  const postgres = postgresCpuSeconds([database]);
  const percent = (seconds: number) => Math.round((seconds / window.seconds) * 100);
  const watched = cpuSeconds(a.process.pid) - from.watched;
  const changing = cpuSeconds(b.process.pid) - from.changing;
  const benchSeconds = (bench.user + bench.system) / 1e6;
  let postgresSeconds = 0;
  for (const [pid, seconds] of postgres) postgresSeconds += seconds - (from.postgres.get(pid) ?? 0);
  const machineSeconds = (machine.busy - from.machine.busy) / CLOCK_TICKS;
  const cpu = {
    watched: percent(watched),
    changing: percent(changing),
    bench: percent(benchSeconds),
    postgres: percent(postgresSeconds),
    others: percent(
      Math.max(0, machineSeconds - watched - changing - benchSeconds - postgresSeconds),
    ),
    machine: Math.round(
      ((machine.busy - from.machine.busy) / (machine.total - from.machine.total)) * 100,
    ),
  };
  if (profile) await writeFile(profile, JSON.stringify(await inspector.stopProfile()));
  const calls = await changes.answered();
  const missed = await views.drained();
  benchLoop.disable();
  const { lag: lagTo, eventLoop } = await watchMetrics(a);
  const ms = (ns: number) => round(ns / 1e6, 1);
  if (missed > 0) {
    throw new Error(
      `${missed} changes not seen by their watcher within ${options.deliveryTimeoutMs} ms${await failures(watchers)}`,
    );
  }
  return {
    changesPerSecond: Math.round(window.count / window.seconds),
    calls: latencySummary(calls),
    latency: latencySummary(views.fromAnswer),
    fromSend: latencySummary(views.fromSend),
    beforeAnswer: views.beforeAnswer(),
    missed,
    serviceLag: lagBetween(lagFrom, lagTo),
    cpu,
    eventLoopDelay: {
      watched: eventLoop,
      bench: { p99Ms: ms(benchLoop.percentile(99)), maxMs: ms(benchLoop.max) },
    },
  };
}

/** A change made here: the version it made, when it was sent and answered. */
interface Change {
  readonly version: number;
  readonly sentAt: number;
  readonly answeredAt: number;
  /** Made in the measured window (else in a warm-up: checked, not measured). */
  readonly measured: boolean;
}

/** One open WatchConsultation stream, read here. */
interface Watcher {
  readonly consultationId: string;
  /** Its patient's bearer token, sent with each call (the transports are shared). */
  readonly headers: Readonly<Record<string, string>>;
  /** The version of the first view: the changes made here count from it. */
  base: number;
  /** The newest version received, and when (performance.now()). */
  seen: number;
  seenAt: number;
  /** Changes made here and answered so far. */
  changes: number;
  /** Changes answered and not yet seen on the stream. */
  waiting: Change[];
  readonly stop: AbortController;
  /** Resolves with the first view. */
  readonly opened: Promise<void>;
  /** How the stream ended: 'closed' when stopped here; anything else is a failure. */
  ended: Promise<string>;
}

/** What changes were seen, and how long after their answer. */
interface Deliveries {
  /** The watcher received a view of `version`. */
  viewed(watcher: Watcher, version: number): void;
  /** A change of the watcher's consultation was answered. */
  answered(watcher: Watcher, change: Change): void;
  /** Milliseconds, measured changes only. */
  readonly fromAnswer: number[];
  readonly fromSend: number[];
  beforeAnswer(): number;
  /**
   * Waits until every answered change was seen, at most the delivery timeout; answers how
   * many were not, or were seen later than that after their answer.
   */
  drained(): Promise<number>;
}

function deliveries(timeoutMs: number): Deliveries {
  const waiting = new Set<Watcher>();
  const fromAnswer: number[] = [];
  const fromSend: number[] = [];
  let beforeAnswer = 0;
  let late = 0;
  const record = (change: Change, at: number) => {
    if (at - change.answeredAt > timeoutMs) late++;
    if (!change.measured) return;
    if (at < change.answeredAt) beforeAnswer++;
    fromAnswer.push(Math.max(0, at - change.answeredAt));
    fromSend.push(at - change.sentAt);
  };
  return {
    viewed(watcher, version) {
      const at = performance.now();
      watcher.seen = Math.max(watcher.seen, version);
      watcher.seenAt = at;
      watcher.waiting = watcher.waiting.filter((change) => {
        if (change.version > version) return true;
        record(change, at);
        return false;
      });
      if (watcher.waiting.length === 0) waiting.delete(watcher);
    },
    answered(watcher, change) {
      // A's view can beat B's answer here: then it was seen when it arrived.
      if (watcher.seen >= change.version) return record(change, watcher.seenAt);
      watcher.waiting.push(change);
      waiting.add(watcher);
    },
    fromAnswer,
    fromSend,
    beforeAnswer: () => beforeAnswer,
    async drained() {
      const deadline = performance.now() + timeoutMs;
      while (waiting.size > 0 && performance.now() < deadline) await sleep(20);
      let unseen = 0;
      for (const watcher of waiting) unseen += watcher.waiting.length;
      return unseen + late;
    },
  };
}

/** Makes the changes through copy B: open loop, paced, each by the consultation's patient. */
interface Changer {
  /** Changes at `rate`/s for `ms`, spread over `watchers`' consultations. */
  run(
    watchers: readonly Watcher[],
    rate: number,
    ms: number,
    measured: boolean,
  ): Promise<{ count: number; seconds: number }>;
  /** Waits for every change made so far to be answered; their latencies (measured ones), in ms. */
  answered(): Promise<number[]>;
}

function changer(client: VideoClient, views: Deliveries): Changer {
  const pending = new Set<Promise<void>>();
  const callMs: number[] = [];
  let errors = 0;
  let firstError: unknown;
  let next = 0;
  const change = (watcher: Watcher, measured: boolean) => {
    const sentAt = performance.now();
    const call = client
      .reportTechnicalIssue(
        {
          consultationId: watcher.consultationId,
          issueType: TechnicalIssueType.CONNECTION,
          description: 'bench: watch delivery',
        },
        { headers: watcher.headers },
      )
      .then(
        () => {
          const answeredAt = performance.now();
          if (measured) callMs.push(answeredAt - sentAt);
          // Each report makes exactly one new version (checkVersions holds it to that).
          watcher.changes++;
          const version = watcher.base + watcher.changes;
          views.answered(watcher, { version, sentAt, answeredAt, measured });
        },
        (error: unknown) => {
          errors++;
          firstError ??= error;
        },
      );
    pending.add(call);
    void call.finally(() => pending.delete(call));
  };
  return {
    run(watchers, rate, ms, measured) {
      // A stride prime to the count visits every consultation once per `length` changes,
      // neighbours far apart.
      return paced(rate, ms, (from, to) => {
        for (let i = from; i < to; i++) {
          const watcher = watchers[(next++ * 7919) % watchers.length];
          if (watcher) change(watcher, measured);
        }
      });
    },
    async answered() {
      await Promise.all(pending);
      if (errors > 0) {
        throw new Error(`${CHANGE_RPC} failed ${errors} times`, { cause: firstError });
      }
      return callMs;
    },
  };
}

/**
 * Opens a stream for each consultation number (its own patient watching it), a transport
 * per STREAMS_PER_CONNECTION streams, OPENING_AT_ONCE at a time, each up to its first view.
 */
async function openWatchers(
  a: Service,
  numbers: readonly number[],
  views: Deliveries,
): Promise<Watcher[]> {
  const transports = Array.from(
    { length: Math.ceil(numbers.length / STREAMS_PER_CONNECTION) },
    () => videoClient(a.baseUrl),
  );
  const watchers: Watcher[] = [];
  for (let i = 0; i < numbers.length; i += OPENING_AT_ONCE) {
    const batch = numbers.slice(i, i + OPENING_AT_ONCE).map((n, j) => {
      const client = transports[Math.floor((i + j) / STREAMS_PER_CONNECTION)];
      if (!client) throw new Error('no transport for this stream');
      return startWatcher(client, consultationId(n), a.patientToken(ownPatient(n)), views);
    });
    await Promise.all(batch.map(firstView));
    watchers.push(...batch);
  }
  return watchers;
}

function startWatcher(client: VideoClient, id: string, token: string, views: Deliveries): Watcher {
  let opened = () => {};
  const watcher: Watcher = {
    consultationId: id,
    headers: { authorization: `Bearer ${token}` },
    base: 0,
    seen: 0,
    seenAt: 0,
    changes: 0,
    waiting: [],
    stop: new AbortController(),
    opened: new Promise<void>((resolve) => {
      opened = resolve;
    }),
    ended: Promise.resolve('not started'),
  };
  watcher.ended = (async () => {
    try {
      const stream = client.watchConsultation(
        { consultationId: id },
        { headers: watcher.headers, signal: watcher.stop.signal },
      );
      for await (const message of stream) {
        // Keep-alives, and messages about the place in the queue only, carry no consultation.
        const version = message.consultation?.version;
        if (version === undefined) continue;
        if (watcher.base === 0) {
          watcher.base = version;
          watcher.seen = version;
          watcher.seenAt = performance.now();
          opened();
        } else {
          views.viewed(watcher, version);
        }
      }
      return 'ended by the service';
    } catch (error) {
      return watcher.stop.signal.aborted ? 'closed' : ConnectError.from(error).message;
    }
  })();
  return watcher;
}

/** Waits for the watcher's first view; a stream that ends before it fails the run. */
async function firstView(watcher: Watcher): Promise<void> {
  const ended = await Promise.race([watcher.opened.then(() => undefined), watcher.ended]);
  if (ended !== undefined) {
    throw new Error(
      `WatchConsultation ${watcher.consultationId} ended before its first view: ${ended}`,
    );
  }
}

/** Closes the streams; one that had ended by itself before fails the run. */
async function closeWatchers(watchers: readonly Watcher[]): Promise<void> {
  const failed = await failures(watchers);
  for (const watcher of watchers) watcher.stop.abort();
  await Promise.all(watchers.map((watcher) => watcher.ended));
  if (failed) throw new Error(`a WatchConsultation stream ended by itself${failed}`);
}

/** ': <how>' of the first stream that ended by itself ('' when none did). */
async function failures(watchers: readonly Watcher[]): Promise<string> {
  const still = Symbol('open');
  for (const watcher of watchers) {
    const ended = await Promise.race([watcher.ended, Promise.resolve(still)]);
    if (ended !== still) return `: ${watcher.consultationId} ${ended}`;
  }
  return '';
}

/**
 * Each consultation's newest view is the version of its first plus one per change made
 * here: else something else changed it, or a report made more than one version, and the
 * latencies (which count on one version per change) mean nothing.
 */
function checkVersions(watchers: readonly Watcher[]): void {
  const off = watchers.find((watcher) => watcher.seen !== watcher.base + watcher.changes);
  if (off) {
    throw new Error(
      `${off.consultationId}: version ${off.seen} seen after ${off.changes} changes from version ${off.base}`,
    );
  }
}

/**
 * A's memory after SETTLE_MS alone and a full garbage collection (so that heap used is
 * what is live, not what the last allocations left): the median of MEMORY_READINGS readings.
 */
async function settledMemory(a: Service, inspector: Inspector): Promise<MemorySample> {
  await sleep(SETTLE_MS);
  await inspector.collectGarbage();
  const readings: MemorySample[] = [];
  for (let i = 0; i < MEMORY_READINGS; i++) {
    const metrics = await metricsOf(a);
    readings.push({
      openStreams: metric(metrics, 'watch_open_streams'),
      rssMiB: rssBytes(a.process.pid) / 2 ** 20,
      heapUsedMiB: metric(metrics, 'nodejs_heap_size_used_bytes') / 2 ** 20,
    });
    await sleep(200);
  }
  const median = (key: keyof MemorySample) =>
    readings.map((reading) => reading[key]).sort((x, y) => x - y)[readings.length >> 1] ?? NaN;
  return {
    openStreams: median('openStreams'),
    rssMiB: round(median('rssMiB'), 1),
    heapUsedMiB: round(median('heapUsedMiB'), 1),
  };
}

/** A's delivery lag histogram (watch_delivery_lag_seconds) as it stands. */
interface LagHistogram {
  readonly count: number;
  readonly sumSeconds: number;
  /** Cumulative counts by upper bound in seconds, ascending (Prometheus' `le`). */
  readonly buckets: ReadonlyMap<number, number>;
}

/**
 * A's delivery lag histogram as it stands, and its event loop delay since the last
 * reading of its metrics (nodejs_eventloop_lag_*).
 */
async function watchMetrics(a: Service): Promise<{
  lag: LagHistogram;
  eventLoop: { readonly p99Ms: number; readonly maxMs: number };
}> {
  const metrics = await metricsOf(a);
  const buckets = new Map<number, number>();
  for (const [, le, count] of metrics.matchAll(
    /^watch_delivery_lag_seconds_bucket\{le="([^"]+)"\} (\S+)/gm,
  )) {
    buckets.set(le === '+Inf' ? Infinity : Number(le), Number(count));
  }
  const ms = (name: string) => round(metric(metrics, name) * 1000, 1);
  return {
    lag: {
      count: metric(metrics, 'watch_delivery_lag_seconds_count'),
      sumSeconds: metric(metrics, 'watch_delivery_lag_seconds_sum'),
      buckets,
    },
    eventLoop: {
      p99Ms: ms('nodejs_eventloop_lag_p99_seconds'),
      maxMs: ms('nodejs_eventloop_lag_max_seconds'),
    },
  };
}

/** The views A sent between two readings of its histogram: mean lag, and where p99 falls. */
function lagBetween(from: LagHistogram, to: LagHistogram) {
  const count = to.count - from.count;
  const p99 = [...to.buckets].find(([le, n]) => n - (from.buckets.get(le) ?? 0) >= 0.99 * count);
  return {
    meanMs: round(((to.sumSeconds - from.sumSeconds) * 1000) / count, 2),
    p99AtMostMs: p99 ? round(p99[0] * 1000, 1) : Infinity,
  };
}

async function metricsOf(service: Service): Promise<string> {
  const response = await fetch(`${service.baseUrl}/metrics`);
  if (!response.ok) throw new Error(`GET /metrics answered ${response.status}`);
  return response.text();
}

/** The value of an unlabelled metric in Prometheus' text format. */
function metric(text: string, name: string): number {
  const match = new RegExp(`^${name} (\\S+)`, 'm').exec(text);
  if (!match?.[1]) throw new Error(`no ${name} in /metrics`);
  return Number(match[1]);
}
