import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_ENTRIES_PER_SEAL, sealAuditTrail } from '../../src/persistence/audit-seals.js';
import {
  type AuditVerification,
  verifyAuditExport,
  verifyAuditTrail,
} from '../../src/persistence/audit-verification.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { appointmentId, slot, videoClient } from '../support/clients.js';
import {
  createTestDatabase,
  serverForSeveralCopies,
  type TestDatabase,
} from '../support/database.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** `npm run audit:verify [-- args]` on a database: its JSON line and exit code. */
async function auditVerify(
  env: Record<string, string>,
  ...args: string[]
): Promise<{ code: number; result: AuditVerification & { ms: number } }> {
  const run = promisify(execFile)(
    process.execPath,
    ['--import', 'tsx', 'src/persistence/audit-cli.ts', 'verify', ...args],
    {
      cwd: root,
      env: { PATH: process.env.PATH ?? '', ...env, LOG_LEVEL: 'silent' },
      timeout: 60_000,
    },
  );
  const { stdout, code } = await run.then(
    ({ stdout }) => ({ stdout, code: 0 }),
    (error: { stdout: string; code: number }) => ({ stdout: error.stdout, code: error.code }),
  );
  return { code, result: JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') };
}

/**
 * A pool for the test's own statements. `pool.end()` resolves before its connections have
 * closed, and dropping the database right after (`with (force)`) terminates them: the
 * error that reports is the end of the test's database, not a failure.
 */
function quietPool(config: pg.PoolConfig): pg.Pool {
  const pool = new pg.Pool(config);
  pool.on('error', () => {});
  return pool;
}

/** Audit entries the way the service writes them: a few consultations scheduled and read. */
async function someCalls(t: TestApp, n: number): Promise<void> {
  const service = videoClient(t.baseUrl, t.token('service', 'appointments'));
  const doctor = videoClient(t.baseUrl, t.token('doctor', 'doc-seal'));
  for (let i = 0; i < n; i++) {
    const { consultation } = await service.scheduleConsultation({
      appointmentId: appointmentId('seal'),
      doctorId: 'doc-seal',
      patientId: `pat-seal-${i}`,
      ...slot(60),
    });
    await doctor.getConsultationStatus({ consultationId: consultation?.id ?? '' });
  }
}

/**
 * Waits until every audit entry's transaction is below the oldest one still running on
 * the server (which may be another test's, in another database): then one seal covers
 * them all.
 */
async function settled(pool: pg.Pool): Promise<void> {
  for (const started = Date.now(); Date.now() - started < 10_000; await setTimeout(50)) {
    const { rows } = await pool.query<{ settled: boolean }>(
      `select coalesce(pg_snapshot_xmin(pg_current_snapshot()) > max(tx), true) as settled
         from audit_entry`,
    );
    if (rows[0]?.settled) return;
  }
  throw new Error('audit entries still written by running transactions after 10 s');
}

describe('the audit trail sealed by the service', () => {
  it('is sealed as the service runs and verifies clean with npm run audit:verify', async () => {
    const database = await createTestDatabase();
    try {
      // Its settings name this database (not `shared`: the embedded engine has one copy).
      const t = await startTestApp({ AUDIT_SEAL_INTERVAL_MS: '100', ...database.env });
      try {
        await someCalls(t, 3);
        // A seal made after the last call's transaction ended covers it.
        await setTimeout(1_000);
      } finally {
        await t.stop();
      }
      const { code, result } = await auditVerify(database.env);
      expect(result.broken).toBeUndefined();
      expect(code).toBe(0);
      expect(result.seals).toBeGreaterThan(0);
      expect(result.sealedEntries).toBeGreaterThan(0);
      // Each call wrote one entry (schedule, read); sealed by then, unless a transaction
      // of another test on the same server was still running at the last seal.
      expect(result.sealedEntries + result.unsealedEntries).toBe(6);
      expect(result.head.hash).toMatch(/^[0-9a-f]{64}$/);
    } finally {
      await database.drop();
    }
  }, 60_000);
});

/**
 * What a PostgreSQL superuser can do to the trail despite its triggers (with
 * `session_replication_role = replica` they do not fire), and that the seals tell.
 */
describe.runIf(serverForSeveralCopies)('a sealed audit trail tampered with by a superuser', () => {
  let database: TestDatabase;
  let t: TestApp;
  let pool: pg.Pool;
  beforeAll(async () => {
    database = await createTestDatabase();
    t = await startTestApp({ AUDIT_SEAL_INTERVAL_MS: '3600000' }, database);
    pool = quietPool({ connectionString: database.env.DATABASE_URL });
    await someCalls(t, 3);
    await settled(pool);
    expect(await sealAuditTrail(pool)).toHaveLength(1);
    await someCalls(t, 3);
    await settled(pool);
    expect(await sealAuditTrail(pool)).toHaveLength(1);
    // Written after the last seal: the unsealed tail.
    await someCalls(t, 1);
  }, 60_000);
  afterAll(async () => {
    await t?.stop();
    await pool?.end();
    await database?.drop();
  });

  /** Runs `tampering` as a superuser with the triggers off, verifies, and rolls it all back. */
  async function verifiedAfter(...tampering: string[]): Promise<AuditVerification> {
    const client = await pool.connect();
    try {
      await client.query('begin');
      await client.query('set local session_replication_role = replica');
      for (const statement of tampering) await client.query(statement);
      return await verifyAuditTrail(client);
    } finally {
      await client.query('rollback');
      client.release();
    }
  }

  /** The n-th entry of the trail in sealed order (0: the first). */
  const nth = (n: number) => `(select id from audit_entry order by tx, id offset ${n} limit 1)`;

  it('verifies clean as it is', async () => {
    const clean = await verifyAuditTrail(pool);
    expect(clean).toMatchObject({ seals: 2, sealedEntries: 12, unsealedEntries: 2 });
    expect(clean.broken).toBeUndefined();
  });

  it('detects an entry changed', async () => {
    const found = await verifiedAfter(
      `update audit_entry set outcome = 'permission_denied' where id = ${nth(1)}`,
    );
    expect(found.broken).toEqual({ seq: 1, problem: 'its entries were changed' });
  });

  it('detects an entry removed', async () => {
    const found = await verifiedAfter(`delete from audit_entry where id = ${nth(8)}`);
    expect(found.broken?.seq).toBe(2);
    expect(found.broken?.problem).toMatch(/sealed 6 entries and 5 are there: entries were removed/);
  });

  it('detects an entry inserted into a sealed range', async () => {
    const found = await verifiedAfter(
      `insert into audit_entry (id, at, actor_id, actor_role, clinic_id, action, resource_type, outcome, tx)
       select gen_random_uuid(), at, 'intruder', 'doctor', clinic_id, 'consultation.read', 'consultation', 'allowed', tx
         from audit_entry where id = ${nth(2)}`,
    );
    expect(found.broken?.seq).toBe(1);
    expect(found.broken?.problem).toMatch(/entries were added/);
  });

  it('detects an entry inserted now but dated into the past', async () => {
    const found = await verifiedAfter(
      `insert into audit_entry (id, at, actor_id, actor_role, clinic_id, action, resource_type, outcome)
       values (gen_random_uuid(), now() - interval '2 days', 'intruder', 'doctor', 'clinic-1', 'consultation.read', 'consultation', 'allowed')`,
    );
    expect(found.broken).toEqual({
      seq: 3,
      problem: '1 entries written after seal 2 are dated before it',
    });
  });

  it('detects two entries reordered (their times swapped)', async () => {
    const found = await verifiedAfter(
      `update audit_entry a set at = b.at from audit_entry b
        where (a.id, b.id) in ((${nth(3)}, ${nth(4)}), (${nth(4)}, ${nth(3)}))`,
    );
    expect(found.broken).toEqual({ seq: 1, problem: 'its entries were changed' });
  });

  it('detects a seal changed, or removed', async () => {
    expect((await verifiedAfter(`update audit_seal set entries = 5 where seq = 1`)).broken).toEqual(
      { seq: 1, problem: 'its hash does not match its content' },
    );
    expect((await verifiedAfter('delete from audit_seal where seq = 1')).broken).toEqual({
      seq: 2,
      problem: 'seal 1 is missing (the next is 2)',
    });
  });

  it('exports the sealed trail, which an auditor verifies without the database', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'audit-export-'));
    try {
      const file = join(dir, 'trail.jsonl');
      await promisify(execFile)(
        process.execPath,
        ['--import', 'tsx', 'src/persistence/audit-cli.ts', 'export', file],
        { cwd: root, env: { PATH: process.env.PATH ?? '', ...database.env, LOG_LEVEL: 'silent' } },
      );
      const { code, result } = await auditVerify({}, '--file', file);
      expect(result).toMatchObject({ seals: 2, sealedEntries: 12 });
      expect(result.head).toEqual((await verifyAuditTrail(pool)).head);
      expect(code).toBe(0);

      const lines = (await readFile(file, 'utf8')).trim().split('\n');
      const verified = (edited: string[]) =>
        verifyAuditExport(
          (async function* () {
            yield* edited;
          })(),
        );
      // Seal, six entries, seal, six entries.
      expect(lines).toHaveLength(14);
      const changed = [...lines];
      changed[3] = (changed[3] ?? '').replace('consultation', 'consultatioN');
      expect((await verified(changed)).broken).toEqual({
        seq: 1,
        problem: 'its entries were changed',
      });
      expect((await verified(lines.toSpliced(9, 1))).broken?.problem).toMatch(
        /entries were removed/,
      );
      expect((await verified(lines.toSpliced(0, 7))).broken).toEqual({
        seq: 2,
        problem: 'seal 1 is missing (the next is 2)',
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('reports the first broken link from npm run audit:verify, with exit code 1', async () => {
    const client = await pool.connect();
    try {
      await client.query('set session_replication_role = replica');
      await client.query(`delete from audit_entry where id = ${nth(0)}`);
      await client.query('reset session_replication_role');
    } finally {
      client.release();
    }
    const { code, result } = await auditVerify(database.env);
    expect(code).toBe(1);
    expect(result.broken?.seq).toBe(1);
    expect(result.broken?.problem).toMatch(/entries were removed/);
  }, 60_000);
});

describe.runIf(serverForSeveralCopies)('sealing at scale', () => {
  let database: TestDatabase;
  let pool: pg.Pool;
  beforeAll(async () => {
    database = await createTestDatabase();
    const t = await startTestApp({ AUDIT_SEAL_INTERVAL_MS: '3600000' }, database);
    await t.stop();
    pool = quietPool({ connectionString: database.env.DATABASE_URL, max: 4 });
  });
  afterAll(async () => {
    await pool?.end();
    await database?.drop();
  });

  it('seals 100,000 entries in bounded seals and verifies them; copies sealing at once chain one trail', async () => {
    const insert = (n: number, from: number) =>
      pool.query(
        `insert into audit_entry (id, at, actor_id, actor_role, clinic_id, action, resource_type, resource_id, outcome)
         select gen_random_uuid(), now(), 'doctor-' || (g % 50), 'doctor', 'clinic-' || (g % 7),
                'consultation.read', 'consultation', 'c-' || g, 'allowed'
           from generate_series($1::int, $2::int) g`,
        [from, from + n - 1],
      );
    // One transaction's 60 000 entries stay in one seal; many small ones are split.
    await insert(60_000, 1);
    for (let i = 0; i < 80; i++) await insert(500, 60_001 + i * 500);

    // Two sealers at once (two copies), while more entries are written.
    const writing = Promise.all(Array.from({ length: 20 }, (_, i) => insert(10, 200_000 + i * 10)));
    const [a, b] = await Promise.all([sealAuditTrail(pool), sealAuditTrail(pool), writing]);
    await settled(pool);
    const c = await sealAuditTrail(pool);

    const seals = [...a, ...b, ...c].sort((x, y) => x.seq - y.seq);
    expect(seals.map((s) => s.seq)).toEqual(seals.map((_, i) => i + 1));
    expect(Math.max(...seals.slice(1).map((s) => s.entries))).toBeLessThanOrEqual(
      MAX_ENTRIES_PER_SEAL,
    );
    const started = performance.now();
    const verification = await verifyAuditTrail(pool);
    const ms = Math.round(performance.now() - started);
    console.log(
      `verified ${verification.sealedEntries} entries in ${verification.seals} seals: ${ms} ms`,
    );
    expect(verification.broken).toBeUndefined();
    expect(verification.sealedEntries + verification.unsealedEntries).toBe(100_200);
    expect(verification.unsealedEntries).toBe(0);
  }, 120_000);
});
