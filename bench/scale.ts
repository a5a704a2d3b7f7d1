/**
 * Scale: does every call cost the same in a clinic's tenth year as on its first day? Two
 * databases of the bench's own on the same server, both migrated and holding the same few
 * live consultations (scale-history.ts): one without history ("empty"), one with a
 * clinic's two years of it ("seeded": 100 000 past consultations, a million audit entries,
 * their participants, connections, events and inbox entries). The service runs on each in
 * a Node process of its own (`startService`, fixture.ts: RATE_LIMIT_REQUESTS=0, so the
 * limiter never refuses the bench's callers; its timers of sweeps and reconciliations
 * hourly, so none runs during the calls); one caller here calls them in turn, one call at
 * a time (scale-steps.ts says what is called, as whom).
 *
 * Each step's latency on the seeded database is compared with the same step on the empty
 * one, measured in the same run and interleaved call by call: a visit (or read, or pass)
 * on one database, then the same on the other, the first alternating (A B, B A, A B…), so
 * that the machine's drift, and whatever else runs on it, falls on both alike. The steps
 * come in rounds (visits, then each read in turn), so that each is measured at several
 * times of the run. A warm-up comes first, not timed: visits, the walks to the deep pages
 * (with page tokens, 100 rows a page), calls of each read. The background passes are timed
 * last, with both services stopped, on the sweeper and reconciler built in this process.
 * The CPU the run's processes used, and the rest of the machine's, is read over the calls
 * and over the passes (cpu.ts): on a shared machine the p99s are partly the others'.
 *
 * Both ratios, p50 and p99, are judged. A step whose p99 alone misses while its p50 ratio
 * is near 1 is usually the machine (fsync of the commits, other processes); its plans
 * tell (scale-plans.ts).
 *
 * With `plansFile`, the SQL of every step on the seeded database is written there, with
 * the plans of its reads (scale-plans.ts).
 */
import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { videoClient } from '../test/support/clients.js';
import {
  type AutovacuumStandIn,
  type AutovacuumWork,
  autovacuumIsOn,
  startAutovacuumStandIn,
} from './autovacuum.js';
import { REPOSITORY_ROOT } from './child.js';
import { type CpuShares, startCpuMeter } from './cpu.js';
import {
  type BenchDatabase,
  createBenchDatabase,
  type Service,
  serviceFormText,
  startService,
  startServiceInProcess,
  withClient,
} from './fixture.js';
import { type LatencySummary, latencySummary, round } from './load.js';
import {
  countRows,
  type HistoryShape,
  seedHistory,
  seedStanding,
  type TableCounts,
} from './scale-history.js';
import { type PlanSummary, writePlans } from './scale-plans.js';
import {
  bearerOptions,
  historyWindow,
  openBackgroundPasses,
  READS,
  type Runner,
  reconcilerPass,
  type Side,
  STEPS,
  type StepName,
  sweeperPass,
  visit,
  walkToDeepPages,
} from './scale-steps.js';

export interface ScaleOptions {
  /** The PostgreSQL server (DATABASE_URL) the two databases are created on. */
  readonly serverUrl: string;
  readonly history: HistoryShape;
  /** Rounds of every step on both databases. */
  readonly rounds: number;
  /**
   * Visits per database and round (each times ScheduleConsultation twice, every other
   * write once, ListWaitingRoom and GetConsultationStatus once).
   */
  readonly visitsPerRound: number;
  /** Calls of each read per database and round. */
  readonly readsPerRound: number;
  /** Sweeper and reconciler passes per database and round. */
  readonly passesPerRound: number;
  /** A batch (one step's calls on both databases in one round) stops early after this long. */
  readonly batchBudgetMs: number;
  /** Visits, and calls of each read, on each database before the first round, not timed. */
  readonly warmupCalls: number;
  /** Rows before the deep pages (fewer on the empty database: its lists are short). */
  readonly depth: { readonly history: number; readonly audit: number };
  /** Where to write the seeded database's SQL and plans (BENCH_SCALE_PLANS), if anywhere. */
  readonly plansFile?: string | undefined;
}

/** One step on both databases. */
export interface ScaleStep {
  readonly step: StepName;
  readonly empty: LatencySummary;
  readonly seeded: LatencySummary;
  /** Seeded over empty. */
  readonly p50Ratio: number;
  readonly p99Ratio: number;
}

export interface ScaleResult {
  readonly steps: readonly ScaleStep[];
  readonly rows: { readonly empty: TableCounts; readonly seeded: TableCounts };
  readonly seedSeconds: number;
  /** Rows before each deep page, per database. */
  readonly depths: Readonly<Record<Side['name'], { history: number; audit: number }>>;
  /** The service code measured: its commit and the files under src/ changed since. */
  readonly source: { readonly commit: string; readonly uncommitted: readonly string[] };
  /** CPU use while the calls were timed, and while the passes were. */
  readonly cpu: { readonly calls: CpuShares; readonly passes: CpuShares };
  /** Only with `plansFile`: each step's statements on the seeded database, summarised. */
  readonly plans: Partial<Record<StepName, PlanSummary>> | undefined;
  /**
   * Whether the server's autovacuum daemon ran; when it did not, what the bench's stand-in
   * did on each database by the daemon's rules (autovacuum.ts).
   */
  readonly autovacuum: {
    readonly server: boolean;
    readonly standIn?: Readonly<Record<Side['name'], readonly AutovacuumWork[]>>;
  };
  readonly seconds: number;
}

/** Latencies of one database, by step, in milliseconds. */
type Samples = Map<StepName, number[]>;

/** A database of the measurement, its service, and what was measured on it. */
interface Target {
  readonly side: Side;
  readonly service: Service;
  readonly samples: Samples;
  /** Visits made so far: the next one's number (appointment ids stay unique). */
  visits: number;
  /** Sweeper passes made so far: the next overdue consultation's number. */
  sweeps: number;
}

/** The two databases of the measurement. */
interface Databases {
  readonly empty: BenchDatabase;
  readonly seeded: BenchDatabase;
}

/** The two targets, in the order the interleaving starts with. */
type Targets = readonly [empty: Target, seeded: Target];

export async function measureScale(options: ScaleOptions): Promise<ScaleResult> {
  const started = performance.now();
  const source = serviceSource();
  // Fails now, not after the run, when the plans file cannot be written.
  if (options.plansFile) await writeFile(options.plansFile, '');
  const databases: Databases = {
    empty: await createBenchDatabase(options.serverUrl),
    seeded: await createBenchDatabase(options.serverUrl),
  };
  try {
    const seeding = await prepareDatabases(databases, options.history);
    log(`starting the service on each database: ${serviceFormText()}`);
    const window = historyWindow();
    const targets: Targets = [
      await openTarget('empty', databases.empty, window),
      await openTarget('seeded', databases.seeded, window),
    ];
    // Without the daemon, the empty database's tables, which the run fills from a few rows,
    // would keep the plans of their first analysis (the seeded one's barely change).
    const serverAutovacuum = await withClient(options.serverUrl, autovacuumIsOn);
    if (!serverAutovacuum) {
      log(
        'autovacuum is off on this server: the bench applies its rules to both databases every minute',
      );
    }
    let standIns: Record<Side['name'], AutovacuumStandIn> | undefined;
    try {
      standIns = serverAutovacuum
        ? undefined
        : {
            empty: await startAutovacuumStandIn(databases.empty.url),
            seeded: await startAutovacuumStandIn(databases.seeded.url),
          };
      const depths = await warmUp(targets, options);
      const cpu = await measure(targets, databases, options);
      const plans = options.plansFile
        ? await recordPlans(targets[1], options.plansFile)
        : undefined;
      const [empty, seeded] = targets;
      const standIn = standIns && {
        empty: await standIns.empty.stop(),
        seeded: await standIns.seeded.stop(),
      };
      standIns = undefined;
      return {
        steps: STEPS.map((step) => compare(step, empty.samples, seeded.samples)),
        ...seeding,
        depths,
        source,
        cpu,
        plans,
        autovacuum: { server: serverAutovacuum, standIn },
        seconds: round((performance.now() - started) / 1000, 0),
      };
    } finally {
      const left = Object.values(standIns ?? {});
      await settled(
        'stopping the autovacuum stand-in',
        left.map(async (s) => void (await s.stop())),
      );
      await settled('stopping a service', targets.map(closeTarget));
    }
  } finally {
    await settled(
      'dropping a database',
      Object.values(databases).map((database) => database.drop()),
    );
  }
}

/** Waits for all of the clean-up steps; one that fails is logged and does not stop the rest. */
async function settled(what: string, steps: readonly Promise<void>[]): Promise<void> {
  for (const outcome of await Promise.allSettled(steps)) {
    if (outcome.status === 'rejected') log(`${what} failed: ${String(outcome.reason)}`);
  }
}

/** Migrates both databases, seeds the history into one and the live rows into both. */
async function prepareDatabases(
  databases: Databases,
  history: HistoryShape,
): Promise<Pick<ScaleResult, 'rows' | 'seedSeconds'>> {
  log('migrating both databases (the service in this process, started and stopped)');
  for (const database of Object.values(databases)) await migrate(database);
  log(
    `seeding the history: ${history.consultations} consultations, ${history.auditEntries} audit entries over ${history.days} days`,
  );
  const seedStarted = performance.now();
  await seedHistory(databases.seeded.url, history);
  const seedSeconds = round((performance.now() - seedStarted) / 1000, 1);
  log(`seeded in ${seedSeconds} s; now the live consultations, on both`);
  for (const database of Object.values(databases)) await seedStanding(database.url);
  return {
    rows: {
      empty: await withClient(databases.empty.url, countRows),
      seeded: await withClient(databases.seeded.url, countRows),
    },
    seedSeconds,
  };
}

/** Applies the migrations: the service started in this process migrates on start. */
async function migrate(database: BenchDatabase): Promise<void> {
  const service = await startServiceInProcess(database.url);
  await service.app.stop();
}

async function openTarget(
  name: Side['name'],
  database: BenchDatabase,
  window: Side['window'],
): Promise<Target> {
  const service = await startService(database.url);
  const tokens = new Map<string, ReturnType<typeof bearerOptions>>();
  const side: Side = {
    name,
    databaseUrl: database.url,
    baseUrl: service.baseUrl,
    client: videoClient(service.baseUrl),
    auth: (role, userId) => {
      const key = `${role}/${userId}`;
      const options = tokens.get(key) ?? bearerOptions(service.token(role, userId));
      tokens.set(key, options);
      return options;
    },
    window,
    passes: await openBackgroundPasses(database.url),
  };
  return { side, service, samples: new Map(), visits: 0, sweeps: 0 };
}

async function closeTarget(target: Target): Promise<void> {
  await target.service.process.stop();
  await target.side.passes.close();
}

/**
 * Not timed: visits (so that even the empty database's lists have a page after the
 * first), the walks to the deep pages, then calls of each read; answers the depths.
 */
async function warmUp(targets: Targets, options: ScaleOptions): Promise<ScaleResult['depths']> {
  const { warmupCalls, depth } = options;
  log(`warm-up: ${warmupCalls} visits on each database`);
  const untimed: Runner = (_, call) => call();
  for (const target of targets) {
    for (let i = 0; i < warmupCalls; i++) await visit(target.side, target.visits++, untimed);
  }
  log(
    `walking the doctor's history to row ${depth.history} and the audit trail to row ${depth.audit} (or as far as each database's lists go)`,
  );
  for (const { side } of targets) side.deep = await walkToDeepPages(side, depth);
  log(`warm-up: ${warmupCalls} calls of each read on each database`);
  for (const { side } of targets) {
    for (const read of READS) for (let i = 0; i < warmupCalls; i++) await read.call(side);
  }
  const depthsOf = ({ side }: Target) => ({
    history: side.deep?.history.depth ?? 0,
    audit: side.deep?.audit.depth ?? 0,
  });
  return { empty: depthsOf(targets[0]), seeded: depthsOf(targets[1]) };
}

/**
 * The timed calls, then (both services stopped) the timed passes; answers the CPU use
 * over each.
 */
async function measure(
  targets: Targets,
  databases: Databases,
  options: ScaleOptions,
): Promise<ScaleResult['cpu']> {
  const names = Object.values(databases).map((d) => new URL(d.url).pathname.slice(1));
  const callsCpu = startCpuMeter(
    targets.map((t) => t.service.process.pid),
    names,
  );
  await measureCalls(targets, options);
  const calls = callsCpu.stop();
  log('stopping both services; the background passes run in this process');
  for (const target of targets) await target.service.process.stop();
  const passesCpu = startCpuMeter([], names);
  await measurePasses(targets, options);
  return { calls, passes: passesCpu.stop() };
}

/** The rounds of visits and reads, each batch interleaved on both databases. */
async function measureCalls(targets: Targets, options: ScaleOptions): Promise<void> {
  for (let r = 0; r < options.rounds; r++) {
    log(
      `round ${r + 1} of ${options.rounds}: ${options.visitsPerRound} visits, ${options.readsPerRound} calls of each read, per database`,
    );
    await interleaved(targets, options.visitsPerRound, options.batchBudgetMs, (target) =>
      visit(target.side, target.visits++, timing(target.samples)),
    );
    for (const read of READS) {
      await interleaved(targets, options.readsPerRound, options.batchBudgetMs, (target) =>
        timing(target.samples)(read.name, () => read.call(target.side)),
      );
    }
  }
}

/** The rounds of sweeper and reconciler passes, interleaved like the calls. */
async function measurePasses(targets: Targets, options: ScaleOptions): Promise<void> {
  log(`background passes: ${options.rounds} x ${options.passesPerRound} of each, per database`);
  const { rounds, passesPerRound, batchBudgetMs } = options;
  for (let r = 0; r < rounds; r++) {
    await interleaved(targets, passesPerRound, batchBudgetMs, (target) =>
      sweeperPass(target.side, target.sweeps++, timing(target.samples)),
    );
    await interleaved(targets, passesPerRound, batchBudgetMs, (target) =>
      reconcilerPass(target.side, timing(target.samples)),
    );
  }
}

/** The seeded database's SQL and plans, through a service in this process. */
async function recordPlans(seeded: Target, file: string): Promise<Record<string, PlanSummary>> {
  log(`recording each step's SQL on the seeded database, with plans, into ${file}`);
  const inProcess = await startServiceInProcess(seeded.side.databaseUrl);
  try {
    const side: Side = {
      ...seeded.side,
      baseUrl: inProcess.baseUrl,
      client: videoClient(inProcess.baseUrl),
      auth: (role, userId) => bearerOptions(inProcess.token(role, userId)),
    };
    return await writePlans(file, side, { visit: seeded.visits++, sweep: seeded.sweeps++ });
  } finally {
    await inProcess.app.stop();
  }
}

/**
 * Calls `call` `count` times on each target, one call at a time, interleaved (A B, B A,
 * A B…), so that whatever else the machine does falls on both alike; fewer times if
 * `budgetMs` runs out first.
 */
async function interleaved(
  targets: Targets,
  count: number,
  budgetMs: number,
  call: (target: Target) => Promise<unknown>,
): Promise<void> {
  const until = performance.now() + budgetMs;
  for (let i = 0; i < count && performance.now() < until; i++) {
    for (const target of i % 2 === 0 ? targets : [...targets].reverse()) await call(target);
  }
}

/** A runner that adds each call's time to `samples` (a failed call fails the run). */
function timing(samples: Samples): Runner {
  return async (step, call) => {
    const started = performance.now();
    const result = await call();
    const elapsed = performance.now() - started;
    const values = samples.get(step) ?? [];
    values.push(elapsed);
    samples.set(step, values);
    return result;
  };
}

function compare(step: StepName, empty: Samples, seeded: Samples): ScaleStep {
  const summary = (samples: Samples) => latencySummary(samples.get(step) ?? []);
  const e = summary(empty);
  const s = summary(seeded);
  return {
    step,
    empty: e,
    seeded: s,
    p50Ratio: round(s.p50Ms / e.p50Ms, 2),
    p99Ratio: round(s.p99Ms / e.p99Ms, 2),
  };
}

/** The commit of the working tree and its uncommitted changes under src/ (read with git). */
function serviceSource(): ScaleResult['source'] {
  const git = (...args: string[]) =>
    execFileSync('git', args, {
      cwd: REPOSITORY_ROOT,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  try {
    return {
      commit: git('rev-parse', 'HEAD'),
      uncommitted: git('status', '--porcelain', '--', 'src')
        .split('\n')
        .filter((line) => line !== ''),
    };
  } catch {
    return { commit: 'unknown (no git)', uncommitted: [] };
  }
}

const log = (message: string) => console.error(`[bench] scale: ${message}`);
