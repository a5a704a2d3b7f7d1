/**
 * PostgreSQL's autovacuum rules, applied by the bench on a server that runs with
 * `autovacuum = off`. Some servers are set up that way for test runs; a production
 * server runs the daemon (it is on by default), and without it nothing removes dead row
 * versions or refreshes the planner's statistics, so a long run measures that server's
 * setting instead of the service: tables PostgreSQL has never analyzed are estimated
 * nearly empty, and plans chosen for a few rows read whole histories.
 *
 * Each pass does what the daemon does on its default one-minute round over a database:
 * for every table of the bench's database, a `VACUUM (ANALYZE)` when its dead rows, or
 * the rows inserted since its last vacuum, passed the server's thresholds
 * (`autovacuum_vacuum_threshold` + `autovacuum_vacuum_scale_factor` × rows, and the
 * `_insert_` pair), else an `ANALYZE` when the rows changed since its last analysis
 * passed `autovacuum_analyze_threshold` + `autovacuum_analyze_scale_factor` × rows. The
 * thresholds are read from the server, so the passes follow its configuration.
 */
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { round } from './load.js';

/** One table's vacuum or analysis by a pass, and what it cost. */
export interface AutovacuumWork {
  /** Seconds since the stand-in started. */
  readonly atSeconds: number;
  readonly table: string;
  readonly action: 'vacuum analyze' | 'analyze';
  readonly ms: number;
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

interface Due {
  readonly table: string;
  readonly vacuum: boolean;
  readonly analyze: boolean;
}

/** The tables due, by the daemon's formulas over the server's own settings. */
const DUE = `
  with setting as (
    select max(setting::float) filter (where name = 'autovacuum_vacuum_threshold') as vt,
           max(setting::float) filter (where name = 'autovacuum_vacuum_scale_factor') as vs,
           max(setting::float) filter (where name = 'autovacuum_vacuum_insert_threshold') as it,
           max(setting::float) filter (where name = 'autovacuum_vacuum_insert_scale_factor') as "is",
           max(setting::float) filter (where name = 'autovacuum_analyze_threshold') as at,
           max(setting::float) filter (where name = 'autovacuum_analyze_scale_factor') as "as"
      from pg_settings
  )
  select t.relname as table,
         t.n_dead_tup > s.vt + s.vs * greatest(c.reltuples, 0)
           or t.n_ins_since_vacuum > s.it + s.is * greatest(c.reltuples, 0) as vacuum,
         t.n_mod_since_analyze > s.at + s.as * greatest(c.reltuples, 0) as analyze
    from pg_stat_user_tables t join pg_class c on c.oid = t.relid, setting s
   order by t.relname`;

async function runPass(client: pg.Client, started: number, work: AutovacuumWork[]) {
  const { rows } = await client.query<Due>(DUE);
  for (const due of rows) {
    if (!due.vacuum && !due.analyze) continue;
    const action = due.vacuum ? 'vacuum analyze' : 'analyze';
    const from = performance.now();
    await client.query(`${due.vacuum ? 'vacuum (analyze)' : 'analyze'} "${due.table}"`);
    work.push({
      atSeconds: round((from - started) / 1000, 1),
      table: due.table,
      action,
      ms: round(performance.now() - from, 1),
    });
  }
}
