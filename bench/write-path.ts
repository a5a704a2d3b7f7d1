/**
 * Write path: GenerateToken through the service (auth, the read, the audit and outbox
 * rows, JWT signing) against pgbench running the reference SQL (bench/generate-token.sql:
 * the eight statements GenerateToken sent until 2026-11-29, frozen so that ratios stay
 * comparable) on the same database at the same concurrency, alternately. The service
 * runs in a process of its own, so the SQL it sends cannot be watched there: before it
 * starts, the bench runs one GenerateToken against the service started in its own
 * process (`startApp`, same configuration, same database) and records the statements at
 * the pg driver (`recordGenerateTokenSql`): their number is the round trips per call.
 * Between the two runs the floor (floor-server.ts): the same round trips and token with
 * nothing of the service around them, the most any service could reach here.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { create } from '@bufbuild/protobuf';
import { GetConsultationStatusResponseSchema } from '../gen/video/v1/video_service_pb.js';
import { videoClient } from '../test/support/clients.js';
import { recordStatements } from '../test/support/statements.js';
import { type LoadSummary, type MeasurementOptions, round, runLoad, summarize } from './load.js';
import { checked, startFloor } from './rpc-overhead.js';

export const PGBENCH_SCRIPT = fileURLToPath(new URL('./generate-token.sql', import.meta.url));

export interface WritePathOptions extends MeasurementOptions {
  readonly databaseUrl: string;
}

export interface PgbenchSummary {
  readonly transactions: number;
  readonly tps: number;
  readonly latencyAvgMs: number;
}

export interface WritePathResult {
  readonly service: LoadSummary;
  readonly floor: LoadSummary;
  readonly pgbench: PgbenchSummary;
  /** Service calls per second over pgbench transactions per second. */
  readonly ratio: number;
  /** The floor's calls per second over pgbench's transactions per second. */
  readonly floorRatio: number;
}

export async function measureWritePath(options: WritePathOptions): Promise<WritePathResult> {
  const client = videoClient(options.serviceUrl, options.token);
  const ids = options.consultationIds;
  const [first] = ids;
  if (!first) throw new Error('no consultations to join');

  const floorServer = await startFloor(
    create(GetConsultationStatusResponseSchema),
    options.databaseUrl,
  );
  const floor = videoClient(floorServer.url, options.token);
  const load = (target: typeof client, serverPid: number) =>
    runLoad({
      concurrency: options.concurrency,
      warmupMs: options.warmupMs,
      durationMs: options.durationMs,
      serverPid,
      call: (worker, i) =>
        target.generateToken({ consultationId: ids[(worker * 7919 + i) % ids.length] ?? first }),
    });

  const serviceRuns = [];
  const floorRuns = [];
  const pgbenchRuns: PgbenchSummary[] = [];
  try {
    for (let round = 0; round < options.rounds; round++) {
      serviceRuns.push(checked('GenerateToken', await load(client, options.servicePid)));
      floorRuns.push(checked('GenerateToken (floor)', await load(floor, floorServer.pid)));
      pgbenchRuns.push(
        await runPgbench({
          databaseUrl: options.databaseUrl,
          concurrency: options.concurrency,
          seconds: Math.round(options.durationMs / 1000),
          variables: { consultations: ids.length },
        }),
      );
    }
  } finally {
    await floorServer.stop();
  }
  const service = summarize(serviceRuns);
  const floorSummary = summarize(floorRuns);
  const pgbench = combine(pgbenchRuns);
  return {
    service,
    floor: floorSummary,
    pgbench,
    ratio: round(service.rps / pgbench.tps, 3),
    floorRatio: round(floorSummary.rps / pgbench.tps, 3),
  };
}

/**
 * Runs one GenerateToken against a service in this process (`serviceUrl`, started with
 * `startApp`) and answers the statements it sent at the pg driver, by kind and table, in
 * order: one round trip each.
 */
export function recordGenerateTokenSql(options: {
  readonly serviceUrl: string;
  readonly token: string;
  readonly consultationId: string;
}): Promise<string[]> {
  const client = videoClient(options.serviceUrl, options.token);
  return recordStatements(() => client.generateToken({ consultationId: options.consultationId }));
}

/** pgbench (from PATH, or the PGBENCH variable) running `script` (GenerateToken's by default). */
export async function runPgbench(options: {
  databaseUrl: string;
  concurrency: number;
  seconds: number;
  /** pgbench's variables (`-D name=value`). */
  variables: Readonly<Record<string, string | number>>;
  script?: string;
}): Promise<PgbenchSummary> {
  const args = [
    '-n',
    '-c',
    String(options.concurrency),
    '-j',
    '2',
    '-T',
    String(options.seconds),
    ...Object.entries(options.variables).flatMap(([name, value]) => ['-D', `${name}=${value}`]),
    '-f',
    options.script ?? PGBENCH_SCRIPT,
    options.databaseUrl,
  ];
  const output = await run(process.env.PGBENCH ?? 'pgbench', args);
  const number = (pattern: RegExp) => {
    const match = pattern.exec(output);
    if (!match?.[1]) throw new Error(`pgbench: no ${pattern} in its output:\n${output}`);
    return Number(match[1]);
  };
  const failed = /number of failed transactions: (\d+)/.exec(output)?.[1];
  if (failed && Number(failed) > 0) throw new Error(`pgbench: ${failed} failed transactions`);
  return {
    transactions: number(/number of transactions actually processed: (\d+)/),
    tps: number(/tps = ([\d.]+) \(without initial connection time\)/),
    latencyAvgMs: number(/latency average = ([\d.]+) ms/),
  };
}

/** Several pgbench runs as one: transactions add up, tps and latency are averaged. */
export function combine(runs: readonly PgbenchSummary[]): PgbenchSummary {
  const sum = (pick: (run: PgbenchSummary) => number) =>
    runs.reduce((total, r) => total + pick(r), 0);
  return {
    transactions: sum((r) => r.transactions),
    tps: round(sum((r) => r.tps) / runs.length, 0),
    latencyAvgMs: round(sum((r) => r.latencyAvgMs) / runs.length, 2),
  };
}

function run(command: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve(output) : reject(new Error(`${command} exited ${code}:\n${output}`)),
    );
  });
}
