/**
 * PostgreSQL's autovacuum rules, applied by the bench on a server that runs with
 * `autovacuum = off`. Some servers are set up that way for test runs; a production
 * server runs the daemon (it is on by default), and without it nothing removes dead row
 * versions or refreshes the planner's statistics, so a long run measures that server's
 * setting instead of the service: tables PostgreSQL has never analyzed are estimated
 * nearly empty, and plans chosen for a few rows read whole histories.
 *
 * Each pass is the one the service runs on its embedded engine
 * (src/persistence/autovacuum.ts), on the daemon's default one-minute round.
 */
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { autovacuumPass, type AutovacuumWork as Work } from '../src/persistence/autovacuum.js';
import { round } from './load.js';

/** One table's vacuum or analysis by a pass, and what it cost. */
export interface AutovacuumWork extends Work {
  /** Seconds since the stand-in started, when the pass began. */
  readonly atSeconds: number;
}

export interface AutovacuumStandIn {
  /** Ends the passes (waiting for one in progress) and answers every table's work. */
  stop(): Promise<AutovacuumWork[]>;
}

/** Whether the server's autovacuum daemon runs. */
export async function autovacuumIsOn(client: pg.Client): Promise<boolean> {
  const { rows } = await client.query<{ autovacuum: string }>('show autovacuum');
  return rows[0]?.autovacuum === 'on';
}

/** Runs autovacuum's rules on `databaseUrl` every `intervalMs`, on a connection of its own. */
export async function startAutovacuumStandIn(
  databaseUrl: string,
  intervalMs = 60_000,
): Promise<AutovacuumStandIn> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  const started = performance.now();
  const work: AutovacuumWork[] = [];
  let pass: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    pass = pass.then(() => runPass(client, started, work)).catch(() => {});
  }, intervalMs);
  return {
    async stop() {
      clearInterval(timer);
      await pass;
      await client.end();
      return work;
    },
  };
}

async function runPass(client: pg.Client, started: number, work: AutovacuumWork[]) {
  const passStarted = performance.now();
  for (const done of await autovacuumPass((sql) => client.query(sql))) {
    work.push({
      ...done,
      atSeconds: round((passStarted - started) / 1000, 1),
      ms: round(done.ms, 1),
    });
  }
}

/**
 * What ran the daemon's rules, and the stand-in's work in all (for the printed reports):
 * one list, or lists by where they ran ("on the empty database": …).
 */
export function autovacuumText(
  server: boolean,
  standIn: readonly AutovacuumWork[] | Readonly<Record<string, readonly AutovacuumWork[]>> = [],
): string {
  if (server) return "the server's daemon";
  const done = Array.isArray(standIn)
    ? workText(standIn)
    : Object.entries(standIn)
        .map(([where, work]) => `${workText(work)} ${where}`)
        .join(', ');
  return `off on the server; the bench's stand-in did ${done}`;
}

/** How many vacuums and analyses, and their time. */
function workText(standIn: readonly AutovacuumWork[]): string {
  const total = (action: AutovacuumWork['action']) => {
    const done = standIn.filter((w) => w.action === action);
    const ms = done.reduce((sum, w) => sum + w.ms, 0);
    return `${done.length} × ${action} (${round(ms / 1000, 1)} s)`;
  };
  return `${total('vacuum analyze')}, ${total('analyze')}`;
}
