import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Code, ConnectError } from '@connectrpc/connect';
import { MikroORM } from '@mikro-orm/postgresql';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConsultationStatus } from '../../gen/video/v1/consultation_pb.js';
import { TechnicalIssueType } from '../../gen/video/v1/video_service_pb.js';
import { createLogger } from '../../src/logger.js';
import { ormOptions } from '../../src/persistence/database.js';
import { grantServiceRole } from '../../src/persistence/grants.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { appointmentId, slot, videoClient } from '../support/clients.js';
import { createLeastPrivilegeDatabase, serverForSeveralCopies } from '../support/database.js';
import { png } from '../support/images.js';

/**
 * The service runs as a least-privilege role: migrations run as the tables' owner
 * (DATABASE_MIGRATION_URL) and grant the service's role (DATABASE_URL) only what it needs.
 * Everything works under that role, and the role cannot rewrite the audit trail: not
 * with UPDATE, DELETE or TRUNCATE, not by altering the table, dropping or disabling its
 * triggers, nor with session_replication_role (which would skip them).
 *
 * Needs a PostgreSQL server (DATABASE_URL of a role that may create roles and databases):
 * the embedded engine has one role.
 */
describe.runIf(serverForSeveralCopies)('the service as a least-privilege database role', () => {
  let db: Awaited<ReturnType<typeof createLeastPrivilegeDatabase>>;
  let t: TestApp;
  beforeAll(async () => {
    db = await createLeastPrivilegeDatabase();
    t = await startTestApp({}, db);
  });
  afterAll(async () => {
    await t?.stop();
    await db?.drop();
  });

  /** Runs one statement as the service's own role, as an intruder with its password would. */
  async function asService(
    sql: string,
  ): Promise<{ code?: string; message: string; rows?: unknown[] }> {
    const client = new pg.Client({ connectionString: db.env.DATABASE_URL });
    await client.connect();
    try {
      return { message: 'ok', rows: (await client.query(sql)).rows };
    } catch (error) {
      const e = error as { code?: string; message: string };
      return { code: e.code, message: e.message };
    } finally {
      await client.end();
    }
  }

  it('serves a whole consultation, its reads, its audit trail and its cancellations', async () => {
    const as = (role: Parameters<TestApp['token']>[0], user: string) =>
      videoClient(t.baseUrl, t.token(role, user));
    const service = as('service', 'appointments');
    const doctor = as('doctor', 'doc-lp');
    const patient = as('patient', 'pat-lp');
    const { consultation } = await service.scheduleConsultation({
      appointmentId: appointmentId('lp'),
      doctorId: 'doc-lp',
      patientId: 'pat-lp',
      ...slot(5),
    });
    const id = consultation!.id;
    await patient.checkIn({ consultationId: id });
    expect((await doctor.listWaitingRoom({})).patients).toHaveLength(1);
    await doctor.admitPatient({ consultationId: id });
    await patient.generateToken({ consultationId: id });
    await doctor.startConsultation({ consultationId: id });
    await patient.recordConsent({ consultationId: id });
    await patient.reportTechnicalIssue({
      consultationId: id,
      issueType: TechnicalIssueType.VIDEO,
      description: 'frozen picture',
    });
    await patient.shareMedicalImage({ consultationId: id, content: png() });
    const ended = await doctor.endConsultation({ consultationId: id });
    expect(ended.consultation?.status).toBe(ConsultationStatus.ENDED);
    expect((await patient.listConsultationHistory({})).consultations.length).toBeGreaterThan(0);

    const other = await service.scheduleConsultation({
      appointmentId: appointmentId('lp-cancel'),
      doctorId: 'doc-lp',
      patientId: 'pat-lp',
      ...slot(60),
    });
    await service.cancelConsultation({
      target: { case: 'consultationId', value: other.consultation!.id },
    });
    // A refusal is audited in a transaction of its own: an INSERT, which the role may do.
    const refused = await patient
      .endConsultation({ consultationId: id })
      .catch((e: unknown) => ConnectError.from(e).code);
    expect(refused).toBe(Code.PermissionDenied);

    const trail = await as('clinic_admin', 'admin-lp').listAuditEntries({ resourceId: id });
    expect(trail.entries.length).toBeGreaterThanOrEqual(8);
    expect(trail.entries.map((e) => e.outcome)).toContain('permission_denied');
  });

  it('cannot rewrite the audit trail, not even by going around its triggers', async () => {
    // What it may do: append, and read.
    const appended = await asService(
      `insert into audit_entry (id, at, actor_id, actor_role, clinic_id, action, resource_type, outcome)
       values (gen_random_uuid(), now(), 'u', 'doctor', 'clinic-1', 'consultation.read', 'consultation', 'allowed')`,
    );
    expect(appended.message).toBe('ok');
    const before = await asService('select count(*)::int as n from audit_entry');
    expect(before.rows).toEqual([{ n: expect.any(Number) }]);
    const attempts = {
      update: `update audit_entry set outcome = 'forged'`,
      delete: 'delete from audit_entry',
      truncate: 'truncate audit_entry',
      disableTrigger: 'alter table audit_entry disable trigger audit_entry_no_update_or_delete',
      disableAllTriggers: 'alter table audit_entry disable trigger all',
      dropTrigger: 'drop trigger audit_entry_no_truncate on audit_entry',
      alter: 'alter table audit_entry add column note text',
      drop: 'drop table audit_entry',
      replicationRole: 'set session_replication_role = replica',
      migrationsTable: 'select * from mikro_orm_migrations',
    };
    const results = Object.fromEntries(
      await Promise.all(
        Object.entries(attempts).map(async ([name, sql]) => [name, await asService(sql)] as const),
      ),
    );
    console.log(JSON.stringify(results, null, 1));
    for (const [name, result] of Object.entries(results)) {
      // 42501, insufficient_privilege: refused for want of the privilege, not by the
      // trigger (whose message says "append-only"): the trigger is the second line.
      expect(result.code, name).toBe('42501');
      expect(result.message, name).toMatch(/permission denied|must be owner/);
    }
    expect(await asService('select count(*)::int as n from audit_entry')).toEqual(before);
  });

  it('is refused by the grant step if it could rewrite the trail (superuser, owner)', async () => {
    const orm = await MikroORM.init(ormOptions(db.ownerUrl, 1, createLogger('silent')));
    try {
      await expect(grantServiceRole(orm, db.owner)).rejects.toThrow(/owns/);
      await expect(grantServiceRole(orm, 'postgres')).rejects.toThrow(/superuser/);
      await expect(grantServiceRole(orm, 'no_such_role_here')).rejects.toThrow(/does not exist/);
      // Again for the real one: the same privileges, however often it runs.
      const granted = await grantServiceRole(orm, db.service);
      expect(granted.appendOnly).toEqual(['audit_entry', 'audit_seal']);
      expect(granted.disposable).toEqual(['rate_limit']);
      expect(granted.readWrite).toContain('consultation');
      expect(granted.readWrite).not.toContain('mikro_orm_migrations');
    } finally {
      await orm.close(true);
    }
  });

  it('`npm run migrate -- grant <role>` gives the role its privileges (the operator’s step)', async () => {
    const root = fileURLToPath(new URL('../..', import.meta.url));
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', 'src/persistence/migrate-cli.ts', 'grant', db.service],
      {
        cwd: root,
        env: { ...process.env, ...db.env, LOG_LEVEL: 'info', NODE_ENV: 'test' },
        timeout: 60_000,
      },
    );
    expect(stdout).toContain('privileges granted');
    const privileges = await asService(
      `select has_table_privilege('audit_entry', 'insert') as insert,
              has_table_privilege('audit_entry', 'update') as update,
              has_table_privilege('consultation', 'update') as update_consultation,
              has_table_privilege('consultation', 'delete') as delete_consultation,
              has_table_privilege('rate_limit', 'delete') as delete_rate_limit`,
    );
    expect(privileges.rows).toEqual([
      {
        insert: true,
        update: false,
        update_consultation: true,
        delete_consultation: false,
        delete_rate_limit: true,
      },
    ]);
  }, 60_000);
});
