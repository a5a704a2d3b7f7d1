/**
 * What the audit trail's seals cost (`npm run bench -- audit-seal`; docs/security.md,
 * "Seals"):
 *
 * - on the hot path, each audit entry's transaction id column and its `(tx, id)` index:
 *   pgbench inserting one entry per transaction (bench/audit-entry-insert.sql) into a copy
 *   of `audit_entry` as it was before the seals (the column, and with it its index,
 *   dropped) and into one as it is, alternately in the same rounds, at 10 clients;
 * - off it, the sealer's pass and a verification: 100 000 entries written in 1 000
 *   transactions, then sealed and verified, each timed.
 */
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { sealAuditTrail } from '../src/persistence/audit-seals.js';
import { verifyAuditTrail } from '../src/persistence/audit-verification.js';
import { withClient } from './fixture.js';
import { round } from './load.js';
import { combine, type PgbenchSummary, runPgbench } from './write-path.js';

const INSERT_SCRIPT = fileURLToPath(new URL('./audit-entry-insert.sql', import.meta.url));
const ENTRIES = 100_000;

export interface AuditSealCostResult {
  readonly before: PgbenchSummary;
  readonly after: PgbenchSummary;
  /** Entries inserted per second with the seals' column and index over without. */
  readonly insertRatio: number;
  readonly entries: number;
  readonly sealMs: number;
  readonly seals: number;
  readonly verifyMs: number;
}

export async function measureAuditSealCost(options: {
  /** A migrated database of the bench's own. */
  readonly databaseUrl: string;
  readonly rounds: number;
  readonly seconds: number;
}): Promise<AuditSealCostResult> {
  const { databaseUrl } = options;
  await withClient(databaseUrl, async (client) => {
    await client.query('create table audit_after (like audit_entry including all)');
    await client.query('create table audit_before (like audit_entry including all)');
    await client.query('alter table audit_before drop column tx');
  });
  const runs = { before: [] as PgbenchSummary[], after: [] as PgbenchSummary[] };
  for (let r = 0; r < options.rounds; r++) {
    for (const table of ['before', 'after'] as const) {
      runs[table].push(
        await runPgbench({
          databaseUrl,
          concurrency: 10,
          seconds: options.seconds,
          script: INSERT_SCRIPT,
          variables: { table: `audit_${table}` },
        }),
      );
    }
  }
  const before = combine(runs.before);
  const after = combine(runs.after);

  const pool = new pg.Pool({ connectionString: databaseUrl, max: 2 });
  try {
    // Whatever the migrations and the service wrote is sealed first, off the clock.
    await sealAuditTrail(pool, Number.POSITIVE_INFINITY);
    for (let t = 0; t < 1_000; t++) {
      await pool.query(
        `insert into audit_entry (id, at, actor_id, actor_role, clinic_id, action, resource_type, resource_id, outcome)
         select gen_random_uuid(), now(), 'doctor-' || (g % 50), 'doctor', 'clinic-' || (g % 7),
                'consultation.read', 'consultation', 'c-' || g, 'allowed'
           from generate_series(1, $1::int) g`,
        [ENTRIES / 1_000],
      );
    }
    let started = performance.now();
    const seals = await sealAuditTrail(pool, Number.POSITIVE_INFINITY);
    const sealMs = round(performance.now() - started, 0);
    started = performance.now();
    const verification = await verifyAuditTrail(pool);
    const verifyMs = round(performance.now() - started, 0);
    if (verification.broken) throw new Error(`verification failed: ${verification.broken.problem}`);
    return {
      before,
      after,
      insertRatio: round(after.tps / before.tps, 3),
      entries: seals.reduce((sum, seal) => sum + seal.entries, 0),
      sealMs,
      seals: seals.length,
      verifyMs,
    };
  } finally {
    await pool.end();
  }
}
