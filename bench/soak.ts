/**
 * Soak: does the service keep its pace while a clinic's data grows? The same steady mix
 * for `SOAK_MINUTES` (default 30): `SOAK_CALLERS` (default 6) async loops, each pausing
 * `SOAK_PACE_MS` (default 20) after every call, each loop iteration one appointment:
 *
 *   ScheduleConsultation (service principal), CheckIn (the patient), GetConsultationStatus
 *   three times (the patient, the doctor, the patient), one ListConsultationHistory page
 *   (the doctor's first page of 20), CancelConsultation (service principal).
 *
 * Every iteration schedules a new appointment (an id of its own), so that consultations,
 * their participants, audit entries and outbox rows pile up as in a real clinic, all in
 * the bench's one clinic; loop w (1 … N) is doctor `bench-doctor-w` with patient
 * `bench-patient-w`, so each doctor's history grows by one consultation per iteration of
 * their loop. A failed call is counted (by its Connect code) and the iteration goes on
 * with its next call, which needs only the consultation's id; only a failed
 * ScheduleConsultation ends it. Every call has a deadline of CALL_TIMEOUT_MS, so a hung
 * call is counted (DeadlineExceeded) instead of holding its loop.
 *
 * An earlier run of this mix (12 minutes) fell from 12 470 calls/min (p99 29 ms) to
 * 7 060 calls/min (p99 110 ms) as the rows grew; this tool shows whether the rate, the
 * tail and the service's memory now stay flat.
 *
 * The service runs as in production (`npm run serve`), in a Node process of its own
 * (`startService`, fixture.ts) on a fresh database of the bench's own (`createBenchDatabase`), migrated by
 * the service on start and dropped at the end, failed or interrupted run or not.
 * RATE_LIMIT_REQUESTS=0 turns the per-caller rate limit off (fixture.ts sets it; the soak
 * passes it again): the service principal alone makes two calls of every iteration of
 * every loop, far beyond the default 50 calls per second and caller, and a throttled soak
 * would measure the limiter, not the service. The sweeps and reconciliations run hourly
 * (fixture.ts), so only the soak's calls reach the database; there is no Kafka broker, so
 * the outbox rows stay pending (counted too). On a PostgreSQL server that runs with
 * `autovacuum = off` (some test servers do; it is on by default) the bench applies the
 * daemon's rules to its database every minute itself (autovacuum.ts) and reports what
 * that did: without it nothing analyzes the growing tables, and a long run measures the
 * planner guessing at tables it believes empty.
 *
 * Every minute one line: the calls that succeeded in it (those that finished in it; the
 * calls still out when the run ends are not counted), the failed ones by code, the
 * latency of the successful calls (p50/p95/p99/max, nearest rank; per RPC in the JSON),
 * the service's RSS (`VmRSS` at the minute's end, and its peak, sampled every second), the
 * CPU use of the service's process, PostgreSQL, this process (the load) and every other
 * process (`startCpuMeter`, cpu.ts: the machine is shared, and a compared minute in which
 * others used more than OTHERS_BUSY_PERCENT of a core is flagged in the verdict), and the
 * rows of `consultation`, `audit_entry` and `outbox_message` (exact counts, on a
 * connection of its own). The lines are the rows of the markdown table printed again at
 * the end, with the verdict: the first minute is warm-up; the mean of the next two minutes
 * ("start") against the mean of the last two ("end"), or of one minute each on a run of
 * three or four minutes: calls/min (flat within FLAT_CALLS_TOLERANCE either way), the
 * minutes' p99 (flat up to FLAT_P99_FACTOR) and, judged apart, the service's RSS
 * (FLAT_RSS_FACTOR). `SOAK_OUT=<file>` writes the whole record as JSON. Ctrl-C ends the
 * run early and reports the minutes completed.
 *
 *   DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres npx tsx bench/soak.ts
 *   SOAK_MINUTES=3 SOAK_OUT=/tmp/soak.json DATABASE_URL=... npx tsx bench/soak.ts
 */
import { writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { type CallOptions, Code, ConnectError } from '@connectrpc/connect';
import type pg from 'pg';
import { slot, type VideoClient, videoClient } from '../test/support/clients.js';
import {
  type AutovacuumWork,
  autovacuumIsOn,
  autovacuumText,
  startAutovacuumStandIn,
} from './autovacuum.js';
import { rssBytes } from './child.js';
import { type CpuShares, startCpuMeter } from './cpu.js';
import {
  createBenchDatabase,
  DOCTOR,
  PATIENT,
  type Service,
  startService,
  withClient,
} from './fixture.js';
import { latencySummary, round } from './load.js';

/**
 * "Flat": the end's calls/min within 10% of the start's (the machine's noise between
 * minutes of a steady load is a few per cent; the regression this looks for lost 43%).
 */
const FLAT_CALLS_TOLERANCE = 0.1;
/**
 * "Flat": the end's p99 at most 1.5× the start's (a minute's p99 is its ~100 slowest
 * calls, which a few stalls of the shared machine move; the regression went ×3.8).
 */
const FLAT_P99_FACTOR = 1.5;
/**
 * "Flat" memory: the end's RSS at most 1.2× the start's. V8 grows its heap lazily under a
 * steady load, so some growth is no leak; a leak of 1 KiB per call would add ~350 MiB.
 */
const FLAT_RSS_FACTOR = 1.2;
/** Minutes at the start that are not compared: JIT, pools and caches warming up. */
const WARMUP_MINUTES = 1;
/** Minutes averaged at each end of the run (fewer on a short run). */
const COMPARED_MINUTES = 2;
/**
 * Other processes' CPU (% of one core) above which a minute is flagged: the machine was
 * doing other work then, and the soak measured that too.
 */
const OTHERS_BUSY_PERCENT = 20;
/** A call not answered in this long fails (DeadlineExceeded) and is counted as such. */
const CALL_TIMEOUT_MS = 10_000;
/** How often the service's RSS is read for the minute's peak. */
const RSS_SAMPLE_MS = 1_000;
/** Who calls ScheduleConsultation and CancelConsultation: the appointments service. */
const SERVICE_PRINCIPAL = 'bench-appointments';

const RPCS = [
  'ScheduleConsultation',
  'CheckIn',
  'GetConsultationStatus',
  'ListConsultationHistory',
  'CancelConsultation',
] as const;
type Rpc = (typeof RPCS)[number];

interface SoakOptions {
  readonly serverUrl: string;
  readonly minutes: number;
  readonly callers: number;
  readonly paceMs: number;
  readonly outFile: string | undefined;
}

/** A latency distribution of successful calls, in milliseconds (nearest rank). */
interface Latency {
  readonly p50Ms: number;
  readonly p95Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

interface RpcMinute extends Latency {
  readonly calls: number;
  readonly errors: number;
}

interface TableRows {
  readonly consultation: number;
  readonly auditEntry: number;
  readonly outboxMessage: number;
}

/** One minute of the soak. */
interface MinuteRecord {
  readonly minute: number;
  /** The minute's real length (its timer may fire a little late). */
  readonly seconds: number;
  /** Successful calls that finished in the minute. */
  readonly calls: number;
  /** Successful calls per 60 s of the minute's real length. */
  readonly callsPerMinute: number;
  /** Failed calls by Connect code. */
  readonly errors: Readonly<Record<string, number>>;
  readonly latency: Latency;
  readonly byRpc: Readonly<Record<Rpc, RpcMinute>>;
  /** The service's RSS at the minute's end, and the most it had during the minute. */
  readonly rssBytes: number;
  readonly rssPeakBytes: number;
  /**
   * CPU use over the minute, in % of one core (cpu.ts): the service's process (`services`),
   * this process (`bench`, the load), PostgreSQL (its server processes and the sessions and
   * autovacuum workers of the soak's database), everything else (`others`); `machine` in %
   * of all cores.
   */
  readonly cpu: CpuShares;
  /** Rows at the minute's end. */
  readonly rows: TableRows;
}

/** One end of the run: the mean of some minutes. */
interface WindowMean {
  readonly minutes: readonly number[];
  readonly callsPerMinute: number;
  readonly p99Ms: number;
  readonly rssBytes: number;
}

interface Verdict {
  readonly start: WindowMean;
  readonly end: WindowMean;
  /** End over start. */
  readonly callsRatio: number;
  readonly p99Ratio: number;
  readonly rssRatio: number;
  readonly callsFlat: boolean;
  readonly p99Flat: boolean;
  readonly rssFlat: boolean;
  /** Calls/min and p99 both flat. */
  readonly flat: boolean;
  /** Compared minutes in which other processes used more than OTHERS_BUSY_PERCENT. */
  readonly busyMinutes: readonly number[];
}

interface SoakRecord {
  readonly startedAt: string;
  readonly options: Omit<SoakOptions, 'serverUrl' | 'outFile'>;
  readonly thresholds: {
    readonly callsTolerance: number;
    readonly p99Factor: number;
    readonly rssFactor: number;
  };
  /** The service's RSS after it started, before any call. */
  readonly rssAtStartBytes: number;
  readonly minutes: readonly MinuteRecord[];
  /** The first failure of each code in the run: which call, and its message. */
  readonly firstErrors: Readonly<Record<string, string>>;
  /** Whether the run ended before its time (Ctrl-C, the service gone), and why. */
  readonly endedEarly: string | undefined;
  /**
   * Whether the server's autovacuum daemon ran; when it did not, the vacuums and analyses
   * the bench's stand-in did by the daemon's rules (autovacuum.ts).
   */
  readonly autovacuum: { readonly server: boolean; readonly standIn?: readonly AutovacuumWork[] };
  /** Missing when the run has too few minutes to compare. */
  readonly verdict: Verdict | undefined;
}

/** What the loops report into; `cut()` closes the current minute and opens the next. */
class Recorder {
  private latencies = new Map<Rpc, number[]>();
  private errors = new Map<Rpc, Map<string, number>>();
  readonly firstErrors: Record<string, string> = {};

  succeeded(rpc: Rpc, ms: number): void {
    const values = this.latencies.get(rpc) ?? [];
    values.push(ms);
    this.latencies.set(rpc, values);
  }

  failed(rpc: Rpc, error: unknown): void {
    const connectError = ConnectError.from(error);
    const code = Code[connectError.code] ?? String(connectError.code);
    const codes = this.errors.get(rpc) ?? new Map<string, number>();
    codes.set(code, (codes.get(code) ?? 0) + 1);
    this.errors.set(rpc, codes);
    this.firstErrors[code] ??= `${rpc}: ${connectError.message}`;
  }

  /** The minute's calls so far, by RPC; later calls go to the next minute. */
  cut(): { latencies: Map<Rpc, number[]>; errors: Map<Rpc, Map<string, number>> } {
    const minute = { latencies: this.latencies, errors: this.errors };
    this.latencies = new Map();
    this.errors = new Map();
    return minute;
  }
}

/** The one clinic's callers of loop `w`, as call options carrying their bearer tokens. */
interface Callers {
  readonly service: CallOptions;
  readonly doctor: CallOptions;
  readonly patient: CallOptions;
  readonly doctorId: string;
  readonly patientId: string;
}

async function main(): Promise<void> {
  const options = soakOptions(process.env);
  const database = await createBenchDatabase(options.serverUrl);
  try {
    log(`database ${new URL(database.url).pathname.slice(1)}; starting the service`);
    const service = await startService(database.url, { RATE_LIMIT_REQUESTS: '0' });
    try {
      const record = await withClient(database.url, (counter) =>
        soak(options, database.url, service, counter),
      );
      report(record);
      if (options.outFile) {
        writeFileSync(options.outFile, `${JSON.stringify(record, null, 2)}\n`);
        log(`record written to ${options.outFile}`);
      }
    } finally {
      await service.process.stop();
    }
  } finally {
    await database.drop();
  }
}

function soakOptions(env: NodeJS.ProcessEnv): SoakOptions {
  const serverUrl = env.DATABASE_URL;
  if (!serverUrl) throw new Error('set DATABASE_URL to a PostgreSQL server (see bench/README.md)');
  return {
    serverUrl,
    minutes: integerOf(env, 'SOAK_MINUTES', 30),
    callers: integerOf(env, 'SOAK_CALLERS', 6),
    paceMs: integerOf(env, 'SOAK_PACE_MS', 20, 0),
    outFile: env.SOAK_OUT || undefined,
  };
}

/** The integer in `env[name]`, at least `min`, or `fallback` when unset. */
function integerOf(env: NodeJS.ProcessEnv, name: string, fallback: number, min = 1): number {
  const text = env[name];
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < min) {
    throw new Error(`${name} must be an integer of at least ${min}, not ${text}`);
  }
  return value;
}

/** Runs the loops for the configured minutes, recording each; answers the whole record. */
async function soak(
  options: SoakOptions,
  databaseUrl: string,
  service: Service,
  counter: pg.Client,
): Promise<SoakRecord> {
  const pid = service.process.pid;
  const database = new URL(databaseUrl).pathname.slice(1);
  const startedAt = new Date().toISOString();
  const rssAtStartBytes = rssBytes(pid);
  const serverAutovacuum = await autovacuumIsOn(counter);
  if (!serverAutovacuum) {
    log(
      'autovacuum is off on this server: the bench applies its rules to the database every minute',
    );
  }
  const standIn = serverAutovacuum ? undefined : await startAutovacuumStandIn(databaseUrl);
  const client = videoClient(service.baseUrl);
  const recorder = new Recorder();
  const minutes: MinuteRecord[] = [];
  let stopped = false;
  let endedEarly: string | undefined;
  const interrupt = () => {
    endedEarly = 'interrupted (SIGINT)';
    stopped = true;
  };
  process.once('SIGINT', interrupt);

  log(
    `${options.callers} callers, ${options.paceMs} ms between calls, ${options.minutes} min; one line a minute`,
  );
  console.log(tableHeader());
  const loops = Array.from({ length: options.callers }, (_, w) =>
    callerLoop(client, callersOf(service, w), w, options.paceMs, recorder, () => stopped),
  );
  const rss = new RssPeak(pid);
  const meterCpu = () => startCpuMeter([pid], [database]);
  let cpu = meterCpu();
  const from = performance.now();
  let minuteFrom = from;
  try {
    for (let m = 1; m <= options.minutes && !stopped; m++) {
      await untilMinuteEnds(from, m, () => stopped);
      if (stopped) break;
      const calls = recorder.cut();
      const minuteCpu = cpu.stop();
      cpu = meterCpu();
      const seconds = (performance.now() - minuteFrom) / 1000;
      minuteFrom = performance.now();
      const minute = await minuteRecord(m, seconds, calls, minuteCpu, rss.cut(), counter);
      minutes.push(minute);
      console.log(tableRow(cellsOf(minute)));
    }
  } catch (error) {
    endedEarly = `failed: ${String(error)}`;
    log(endedEarly);
  } finally {
    stopped = true;
    rss.stop();
    process.removeListener('SIGINT', interrupt);
    await Promise.all(loops);
  }
  const autovacuum = { server: serverAutovacuum, standIn: await standIn?.stop() };
  return {
    startedAt,
    options: { minutes: options.minutes, callers: options.callers, paceMs: options.paceMs },
    thresholds: {
      callsTolerance: FLAT_CALLS_TOLERANCE,
      p99Factor: FLAT_P99_FACTOR,
      rssFactor: FLAT_RSS_FACTOR,
    },
    rssAtStartBytes,
    minutes,
    firstErrors: recorder.firstErrors,
    endedEarly,
    autovacuum,
    verdict: verdictOf(minutes),
  };
}

/** The tokens of loop `w`: its own doctor and patient, and the shared service principal. */
function callersOf(service: Service, w: number): Callers {
  const doctorId = `${DOCTOR}-${w + 1}`;
  const patientId = `${PATIENT}-${w + 1}`;
  const options = (token: string): CallOptions => ({
    headers: { authorization: `Bearer ${token}` },
    timeoutMs: CALL_TIMEOUT_MS,
  });
  return {
    service: options(service.token('service', SERVICE_PRINCIPAL)),
    doctor: options(service.token('doctor', doctorId)),
    patient: options(service.token('patient', patientId)),
    doctorId,
    patientId,
  };
}

/** One caller: iterations of the mix until `stopped()`, `paceMs` after every call. */
async function callerLoop(
  client: VideoClient,
  callers: Callers,
  w: number,
  paceMs: number,
  recorder: Recorder,
  stopped: () => boolean,
): Promise<void> {
  /** Times one call into the recorder; answers its response, or undefined if it failed. */
  const call = async <T>(rpc: Rpc, send: () => Promise<T>): Promise<T | undefined> => {
    if (stopped()) return undefined;
    const started = performance.now();
    try {
      const response = await send();
      recorder.succeeded(rpc, performance.now() - started);
      return response;
    } catch (error) {
      recorder.failed(rpc, error);
      return undefined;
    } finally {
      await sleep(paceMs);
    }
  };
  for (let i = 0; !stopped(); i++) {
    await iteration(client, callers, `soak-${w + 1}-${i}`, call);
  }
}

type Call = <T>(rpc: Rpc, send: () => Promise<T>) => Promise<T | undefined>;

/** One appointment through the mix (see the file's comment). */
async function iteration(
  client: VideoClient,
  callers: Callers,
  appointmentId: string,
  call: Call,
): Promise<void> {
  const scheduled = await call('ScheduleConsultation', () =>
    client.scheduleConsultation(
      { appointmentId, doctorId: callers.doctorId, patientId: callers.patientId, ...slot(5) },
      callers.service,
    ),
  );
  const consultationId = scheduled?.consultation?.id;
  if (!consultationId) return;
  const request = { consultationId };
  await call('CheckIn', () => client.checkIn(request, callers.patient));
  for (const reader of [callers.patient, callers.doctor, callers.patient]) {
    await call('GetConsultationStatus', () => client.getConsultationStatus(request, reader));
  }
  await call('ListConsultationHistory', () =>
    client.listConsultationHistory({ pageSize: 20 }, callers.doctor),
  );
  await call('CancelConsultation', () =>
    client.cancelConsultation(
      { target: { case: 'consultationId', value: consultationId } },
      callers.service,
    ),
  );
}

/** Waits until `m` minutes have passed since `from` (or the run is stopped). */
async function untilMinuteEnds(from: number, m: number, stopped: () => boolean): Promise<void> {
  const end = from + m * 60_000;
  while (!stopped() && performance.now() < end) {
    await sleep(Math.min(250, Math.max(1, end - performance.now())));
  }
}

/**
 * The service's RSS, read every RSS_SAMPLE_MS; `cut()` answers the minute's last reading and
 * its peak, and throws when the service's process is gone (that ends the run).
 */
class RssPeak {
  private peak = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly pid: number) {
    this.peak = rssBytes(pid);
    this.timer = setInterval(() => {
      try {
        this.peak = Math.max(this.peak, rssBytes(this.pid));
      } catch {
        // The process is gone: the next cut() says so.
      }
    }, RSS_SAMPLE_MS);
  }

  cut(): { rssBytes: number; rssPeakBytes: number } {
    const now = rssBytes(this.pid);
    const peak = Math.max(this.peak, now);
    this.peak = now;
    return { rssBytes: now, rssPeakBytes: peak };
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

async function minuteRecord(
  minute: number,
  seconds: number,
  calls: ReturnType<Recorder['cut']>,
  cpu: CpuShares,
  rss: { rssBytes: number; rssPeakBytes: number },
  counter: pg.Client,
): Promise<MinuteRecord> {
  const all = [...calls.latencies.values()].flat();
  return {
    minute,
    seconds: round(seconds, 1),
    calls: all.length,
    callsPerMinute: round((all.length * 60) / seconds, 0),
    errors: errorsByCode([...calls.errors.values()]),
    latency: latencyOf(all),
    byRpc: Object.fromEntries(
      RPCS.map((rpc) => [rpc, rpcMinute(calls.latencies.get(rpc), calls.errors.get(rpc))]),
    ) as Record<Rpc, RpcMinute>,
    ...rss,
    cpu,
    rows: await countRows(counter),
  };
}

function rpcMinute(
  latencies: readonly number[] = [],
  errors: ReadonlyMap<string, number> = new Map(),
): RpcMinute {
  const failed = [...errors.values()].reduce((sum, n) => sum + n, 0);
  return { calls: latencies.length, errors: failed, ...latencyOf(latencies) };
}

function errorsByCode(perRpc: readonly ReadonlyMap<string, number>[]): Record<string, number> {
  const total: Record<string, number> = {};
  for (const codes of perRpc) {
    for (const [code, n] of codes) total[code] = (total[code] ?? 0) + n;
  }
  return total;
}

/** p50/p99/max from `latencySummary` (load.ts), p95 by the same nearest rank. */
function latencyOf(values: readonly number[]): Latency {
  const { p50Ms, p99Ms, maxMs } = latencySummary(values);
  const sorted = [...values].sort((a, b) => a - b);
  const p95 = sorted[Math.max(0, Math.ceil(0.95 * sorted.length) - 1)];
  return { p50Ms, p95Ms: p95 === undefined ? Number.NaN : round(p95, 2), p99Ms, maxMs };
}

async function countRows(client: pg.Client): Promise<TableRows> {
  const { rows } = await client.query<{ c: string; a: string; o: string }>(
    `select (select count(*) from consultation) as c, (select count(*) from audit_entry) as a,
       (select count(*) from outbox_message) as o`,
  );
  const row = rows[0];
  if (!row) throw new Error('no row counts');
  return { consultation: Number(row.c), auditEntry: Number(row.a), outboxMessage: Number(row.o) };
}

/**
 * The start (the COMPARED_MINUTES after the warm-up) against the end (the last as many),
 * fewer minutes each when the run is too short for two apiece; none below three minutes.
 */
function verdictOf(minutes: readonly MinuteRecord[]): Verdict | undefined {
  const measured = minutes.slice(WARMUP_MINUTES);
  const size = Math.min(COMPARED_MINUTES, Math.floor(measured.length / 2));
  if (size < 1) return undefined;
  const compared = [...measured.slice(0, size), ...measured.slice(-size)];
  const start = windowMean(measured.slice(0, size));
  const end = windowMean(measured.slice(-size));
  const calls = end.callsPerMinute / start.callsPerMinute;
  const p99 = end.p99Ms / start.p99Ms;
  const rss = end.rssBytes / start.rssBytes;
  const callsFlat = Math.abs(calls - 1) <= FLAT_CALLS_TOLERANCE;
  const p99Flat = p99 <= FLAT_P99_FACTOR;
  return {
    start,
    end,
    callsRatio: round(calls, 3),
    p99Ratio: round(p99, 2),
    rssRatio: round(rss, 2),
    callsFlat,
    p99Flat,
    rssFlat: rss <= FLAT_RSS_FACTOR,
    flat: callsFlat && p99Flat,
    busyMinutes: [
      ...new Set(compared.filter((m) => m.cpu.others > OTHERS_BUSY_PERCENT).map((m) => m.minute)),
    ],
  };
}

function windowMean(minutes: readonly MinuteRecord[]): WindowMean {
  const mean = (pick: (m: MinuteRecord) => number) =>
    minutes.reduce((sum, m) => sum + pick(m), 0) / minutes.length;
  return {
    minutes: minutes.map((m) => m.minute),
    callsPerMinute: round(
      mean((m) => m.callsPerMinute),
      0,
    ),
    p99Ms: round(
      mean((m) => m.latency.p99Ms),
      2,
    ),
    rssBytes: Math.round(mean((m) => m.rssBytes)),
  };
}

const mib = (bytes: number) => round(bytes / 2 ** 20, 1);

const errorsText = (errors: Readonly<Record<string, number>>) =>
  Object.entries(errors)
    .map(([code, n]) => `${code} ${n}`)
    .join(', ') || '0';

/** The columns of a minute, as `cellsOf` fills them. */
const COLUMNS = [
  'Minute',
  'Calls/min',
  'Errors',
  'p50 ms',
  'p95 ms',
  'p99 ms',
  'max ms',
  'RSS MiB (peak)',
  'CPU % service / PostgreSQL / bench / others',
  'Consultations',
  'Audit entries',
  'Outbox rows',
] as const;

function cellsOf(m: MinuteRecord): string[] {
  const { p50Ms, p95Ms, p99Ms, maxMs } = m.latency;
  const { services, postgres, bench, others } = m.cpu;
  return [
    `${m.minute}`,
    `${m.callsPerMinute}`,
    errorsText(m.errors),
    `${p50Ms}`,
    `${p95Ms}`,
    `${p99Ms}`,
    `${maxMs}`,
    `${mib(m.rssBytes)} (${mib(m.rssPeakBytes)})`,
    `${services} / ${postgres} / ${bench} / ${others}`,
    `${m.rows.consultation}`,
    `${m.rows.auditEntry}`,
    `${m.rows.outboxMessage}`,
  ];
}

const tableRow = (cells: readonly string[]) => `| ${cells.join(' | ')} |`;
const tableHeader = () => [tableRow(COLUMNS), `|${'---|'.repeat(COLUMNS.length)}`].join('\n');

/** The table of the minutes, then the verdict and the first error of each code, in markdown. */
function report(record: SoakRecord): void {
  const { callers, paceMs, minutes } = record.options;
  console.log(
    `\n## Soak: ${callers} callers, ${paceMs} ms between calls, ${record.minutes.length} of ${minutes} minutes\n`,
  );
  console.log(tableHeader());
  for (const m of record.minutes) console.log(tableRow(cellsOf(m)));
  console.log(
    `\nAutovacuum: ${autovacuumText(record.autovacuum.server, record.autovacuum.standIn)}.`,
  );
  console.log(`\n${verdictText(record)}`);
  for (const [code, first] of Object.entries(record.firstErrors)) {
    console.log(`- first ${code}: ${first}`);
  }
}

function verdictText(record: SoakRecord): string {
  const ended = record.endedEarly ? `Ended early: ${record.endedEarly}.\n` : '';
  const v = record.verdict;
  if (!v) return `${ended}Verdict: too short to compare (it needs ${WARMUP_MINUTES + 2} minutes).`;
  const span = ({ minutes: [first, ...rest] }: WindowMean) =>
    rest.length === 0 ? `minute ${first}` : `minutes ${first}–${rest.at(-1)}`;
  const word = (flat: boolean) => (flat ? 'flat' : '**not flat**');
  return [
    `${ended}Start = ${span(v.start)}, end = ${span(v.end)} (${WARMUP_MINUTES === 1 ? 'minute 1 is' : `minutes 1–${WARMUP_MINUTES} are`} warm-up).`,
    `- Calls/min: ${v.start.callsPerMinute} → ${v.end.callsPerMinute}, ×${v.callsRatio} (flat within ±${FLAT_CALLS_TOLERANCE * 100}%): ${word(v.callsFlat)}`,
    `- p99: ${v.start.p99Ms} → ${v.end.p99Ms} ms, ×${v.p99Ratio} (flat up to ×${FLAT_P99_FACTOR}): ${word(v.p99Flat)}`,
    `- Service RSS: ${mib(record.rssAtStartBytes)} MiB before any call, ${mib(v.start.rssBytes)} → ${mib(v.end.rssBytes)} MiB, ×${v.rssRatio} (flat up to ×${FLAT_RSS_FACTOR}): ${word(v.rssFlat)}`,
    ...busyText(v.busyMinutes),
    `\nVerdict (calls/min and p99): ${v.flat ? '**flat**' : '**not flat**'}; RSS: ${word(v.rssFlat)}.`,
  ].join('\n');
}

function busyText(minutes: readonly number[]): string[] {
  if (minutes.length === 0) return [];
  return [
    `- Other processes used more than ${OTHERS_BUSY_PERCENT}% of a core in compared minute(s) ${minutes.join(', ')}: the comparison measured that work too; run again on a quiet machine.`,
  ];
}

const log = (message: string) => console.error(`[soak] ${message}`);

await main();
