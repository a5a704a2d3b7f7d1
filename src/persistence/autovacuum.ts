/**
 * PostgreSQL's autovacuum rules, for databases where the daemon does not run.
 *
 * The embedded engine is one: PGlite runs PostgreSQL inside this process without its
 * background workers, so nothing ever vacuums or analyzes its tables. Their planner
 * statistics stay "never analyzed", the planner picks plans for tables it believes hold
 * one row, and dead row versions pile up. Measured on the outbox relay's claim over a
 * 1,200-event backlog (a Kafka outage's worth): 265,000 buffer reads and about 500 ms on
 * never-analyzed tables, 3,500 reads and 7 ms after one ANALYZE. The embedded engine runs
 * on the service's own event loop, so every call waited that long. The service therefore
 * runs a pass on it every few seconds (database.ts). The bench does the same on a server
 * set up with `autovacuum = off` (bench/autovacuum.ts).
 *
 * A pass does what the daemon's worker does on its round: for each table of the current
 * schema, a `VACUUM (ANALYZE)` when its dead rows, or the rows inserted since its last
 * vacuum, passed the thresholds (`autovacuum_vacuum_threshold` +
 * `autovacuum_vacuum_scale_factor` × rows, and the `_insert_` pair), else an `ANALYZE`
 * when the rows changed since its last analysis passed `autovacuum_analyze_threshold` +
 * `autovacuum_analyze_scale_factor` × rows. The counts are the engine's own table
 * statistics (PGlite keeps them too) and the thresholds its own settings.
 */

/** The tables due, by the daemon's formulas over the engine's own settings. */
const DUE = `
with setting as (
  select current_setting('autovacuum_vacuum_threshold')::float8 as vacuum_base,
         current_setting('autovacuum_vacuum_scale_factor')::float8 as vacuum_scale,
         current_setting('autovacuum_vacuum_insert_threshold')::float8 as insert_base,
         current_setting('autovacuum_vacuum_insert_scale_factor')::float8 as insert_scale,
         current_setting('autovacuum_analyze_threshold')::float8 as analyze_base,
         current_setting('autovacuum_analyze_scale_factor')::float8 as analyze_scale
)
select quote_ident(s.relname) as "table",
       s.n_dead_tup > vacuum_base + vacuum_scale * estimate.rows
         or s.n_ins_since_vacuum > insert_base + insert_scale * estimate.rows as vacuum,
       s.n_mod_since_analyze > analyze_base + analyze_scale * estimate.rows as analyze
  from pg_stat_user_tables s
  join pg_class c on c.oid = s.relid
  cross join setting
  cross join lateral (select greatest(c.reltuples, 0) as rows) estimate
 where s.schemaname = current_schema()
 order by s.relname`;

/** One table's vacuum or analysis by a pass, and what it cost. */
export interface AutovacuumWork {
  readonly table: string;
  readonly action: 'vacuum analyze' | 'analyze';
  readonly ms: number;
}

/** Runs one statement outside any transaction (a pool's or a client's `query`). */
export type RunStatement = (sql: string) => Promise<{ rows: unknown[] }>;

/** One pass: each due table vacuumed or analyzed, one statement at a time. */
export async function autovacuumPass(run: RunStatement): Promise<AutovacuumWork[]> {
  const { rows } = await run(DUE);
  const work: AutovacuumWork[] = [];
  for (const due of rows as { table: string; vacuum: boolean; analyze: boolean }[]) {
    if (!due.vacuum && !due.analyze) continue;
    const action = due.vacuum ? 'vacuum analyze' : 'analyze';
    const started = performance.now();
    await run(`${due.vacuum ? 'vacuum (analyze)' : 'analyze'} ${due.table}`);
    work.push({ table: due.table, action, ms: performance.now() - started });
  }
  return work;
}
