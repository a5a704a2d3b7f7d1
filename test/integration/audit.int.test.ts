import { timestampMs } from '@bufbuild/protobuf/wkt';
import { Code } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { DomainError } from '../../src/domain/errors.js';
import { createLogger } from '../../src/logger.js';
import { openDatabase } from '../../src/persistence/database.js';
import { cancelConsultation } from '../../src/video/use-cases/cancel-consultation.js';
import { getConsultationStatus } from '../../src/video/use-cases/get-consultation-status.js';
import { scheduleConsultation } from '../../src/video/use-cases/schedule-consultation.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { appointmentId, codeOf, slot, videoClient } from '../support/clients.js';
import { createTestDatabase } from '../support/database.js';
import { callerOf, openTestUseCases, type TestUseCases } from '../support/use-cases.js';

/** The HIPAA audit trail: every read and change recorded, refusals too, never rewritten. */
let t: TestApp;
const as = (role: Parameters<TestApp['token']>[0], user: string, clinic?: string) =>
  videoClient(t.baseUrl, t.token(role, user, clinic));

beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.stop();
});

describe('audit trail', () => {
  it('records who read and changed a consultation, and who was refused', async () => {
    const { consultation } = await as('service', 'appointments').scheduleConsultation({
      appointmentId: appointmentId('audit'),
      doctorId: 'doc-a',
      patientId: 'pat-a',
      ...slot(5),
    });
    const id = consultation!.id;
    await as('doctor', 'doc-a').getConsultationStatus({ consultationId: id });
    await as('doctor', 'doc-a').startConsultation({ consultationId: id });
    expect(await codeOf(as('patient', 'pat-a').endConsultation({ consultationId: id }))).toBe(
      Code.PermissionDenied,
    );
    expect(await codeOf(as('patient', 'pat-x').getConsultationStatus({ consultationId: id }))).toBe(
      Code.NotFound,
    );

    const admin = as('clinic_admin', 'admin-a');
    const { entries } = await admin.listAuditEntries({ resourceId: id });
    const summary = entries.map((e) => [e.actorId, e.action, e.outcome]).reverse();
    expect(summary).toEqual([
      ['appointments', 'consultation.schedule', 'allowed'],
      ['doc-a', 'consultation.read', 'allowed'],
      ['doc-a', 'consultation.start', 'allowed'],
      ['pat-a', 'consultation.end', 'permission_denied'],
      ['pat-x', 'consultation.read', 'not_found'],
    ]);
    for (const e of entries) {
      expect(e.clinicId).toBe('clinic-1');
      expect(e.resourceType).toBe('consultation');
      expect(e.requestId).not.toBe('');
      expect(e.clientAddress).toMatch(/127\.0\.0\.1/);
      expect(e.userAgent).toMatch(/connect/i);
      expect(e.at).toBeDefined();
    }
    const byActor = await admin.listAuditEntries({ actorId: 'pat-x' });
    expect(byActor.entries.every((e) => e.actorId === 'pat-x')).toBe(true);
  });

  it('shows a clinic admin their own clinic only, and nobody else the trail', async () => {
    const other = await as('clinic_admin', 'admin-b', 'clinic-2').listAuditEntries({});
    expect(other.entries.every((e) => e.clinicId === 'clinic-2')).toBe(true);
    expect(await codeOf(as('doctor', 'doc-a').listAuditEntries({}))).toBe(Code.PermissionDenied);
    expect(await codeOf(as('service', 'svc').listAuditEntries({}))).toBe(Code.PermissionDenied);
  });

  it('shows a clinic admin every attempt on their consultations, from another clinic too', async () => {
    const { consultation } = await as('service', 'appointments').scheduleConsultation({
      appointmentId: appointmentId('audit-x'),
      doctorId: 'doc-x',
      patientId: 'pat-x',
      ...slot(5),
    });
    const id = consultation!.id;
    const missing = '00000000-0000-4000-8000-00000000abcd';
    const intruders = [
      as('clinic_admin', 'admin-c2', 'clinic-2'),
      as('doctor', 'doc-x', 'clinic-2'),
      as('patient', 'pat-x', 'clinic-2'),
      as('nurse', 'nurse-c2', 'clinic-2'),
    ];
    const attempts = (c: ReturnType<typeof as>, consultationId: string) => [
      c.getConsultationStatus({ consultationId }),
      c.startConsultation({ consultationId }),
      c.endConsultation({ consultationId }),
      c.checkIn({ consultationId }),
    ];
    // 16 refused attempts on clinic-1's consultation, and 16 on one that does not exist.
    const onReal = await Promise.all(intruders.flatMap((c) => attempts(c, id).map(codeOf)));
    const onMissing = await Promise.all(intruders.flatMap((c) => attempts(c, missing).map(codeOf)));
    // The callers learn nothing: the same codes for the real one as for the missing one.
    expect(onReal).toEqual(onMissing);
    expect(onReal).toHaveLength(16);
    expect(onReal.every((code) => code === Code.NotFound || code === Code.PermissionDenied)).toBe(
      true,
    );

    const mine = await as('clinic_admin', 'admin-a').listAuditEntries({
      resourceId: id,
      pageSize: 100,
    });
    const fromOther = mine.entries.filter((e) => e.clinicId === 'clinic-2');
    expect(fromOther).toHaveLength(16);
    // In pages of 5, the same entries in the same order, newest first: the clinic's own
    // and the other clinic's attempts (read apart, merged) each once, across the pages.
    const paged: string[] = [];
    let pageToken = '';
    do {
      const page = await as('clinic_admin', 'admin-a').listAuditEntries({
        resourceId: id,
        pageSize: 5,
        pageToken,
      });
      paged.push(...page.entries.map((e) => e.id));
      pageToken = page.nextPageToken;
    } while (pageToken);
    expect(paged).toEqual(mine.entries.map((e) => e.id));
    const times = mine.entries.map((e) => (e.at ? timestampMs(e.at) : Number.NaN));
    expect(times).toEqual([...times].sort((a, b) => b - a));
    expect(fromOther.every((e) => e.outcome !== 'allowed')).toBe(true);
    // Attempts on a consultation that does not exist belong to no clinic but the caller's.
    const none = await as('clinic_admin', 'admin-a').listAuditEntries({ resourceId: missing });
    expect(none.entries).toHaveLength(0);
    // The other clinic still sees its own users' attempts, and nothing else of clinic-1.
    const theirs = await as('clinic_admin', 'admin-c2', 'clinic-2').listAuditEntries({
      resourceId: id,
      pageSize: 100,
    });
    expect(theirs.entries).toHaveLength(16);
    expect(theirs.entries.every((e) => e.clinicId === 'clinic-2')).toBe(true);
    // Every attempt is on the trail as what it was answered, a refusal: a read that
    // slipped past the tenancy condition in SQL would leave an 'allowed' entry even
    // though the caller was answered NOT_FOUND.
    const actions = [
      'consultation.read',
      'consultation.start',
      'consultation.end',
      'consultation.check_in',
    ];
    const answered = onReal.map(
      (code, i) =>
        `${actions[i % actions.length]}: ${code === Code.NotFound ? 'not_found' : 'permission_denied'}`,
    );
    expect(theirs.entries.map((e) => `${e.action}: ${e.outcome}`).sort()).toEqual(answered.sort());
  });

  it('pages through the trail', async () => {
    const admin = as('clinic_admin', 'admin-a');
    const first = await admin.listAuditEntries({ pageSize: 2 });
    const second = await admin.listAuditEntries({ pageSize: 2, pageToken: first.nextPageToken });
    expect(first.entries).toHaveLength(2);
    expect(second.entries.length).toBeGreaterThan(0);
    const ids = [...first.entries, ...second.entries].map((e) => e.id);
    expect(new Set(ids).size).toBe(ids.length);
  });
});

describe('append-only', () => {
  it('refuses UPDATE, DELETE and TRUNCATE on the audit table in the database itself', async () => {
    const db = await createTestDatabase();
    const config = loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent', ...db.env });
    const database = await openDatabase(config, createLogger('silent'));
    try {
      await database.migrate();
      const sql = database.orm.em.getConnection();
      await sql.execute(
        `insert into audit_entry (id, at, actor_id, actor_role, clinic_id, action, resource_type, outcome)
         values ('00000000-0000-4000-8000-000000000001', now(), 'u', 'doctor', 'c', 'consultation.read', 'consultation', 'allowed')`,
      );
      await expect(sql.execute(`update audit_entry set outcome = 'forged'`)).rejects.toThrow(
        /append-only/,
      );
      await expect(sql.execute('delete from audit_entry')).rejects.toThrow(/append-only/);
      await expect(sql.execute('truncate audit_entry')).rejects.toThrow(/append-only/);
      const [row] = await sql.execute<{ outcome: string }[]>('select outcome from audit_entry');
      expect(row?.outcome).toBe('allowed');
    } finally {
      await database.stop();
      await db.drop();
    }
  });
});

describe('when the audit trail cannot be written', () => {
  let u: TestUseCases;
  beforeAll(async () => {
    u = await openTestUseCases();
    await u.sql(
      `create function refuse_audit() returns trigger language plpgsql as $$
         begin raise exception 'audit storage refused the entry'; end $$`,
    );
  });
  afterAll(async () => {
    await u?.stop();
  });

  /** Makes the audit table refuse the entries `when` matches, until the next call. */
  async function refuseAuditEntries(when: string) {
    await u.sql('drop trigger if exists refuse_audit on audit_entry');
    await u.sql(
      `create trigger refuse_audit before insert on audit_entry for each row
         when (${when}) execute function refuse_audit()`,
    );
  }

  /** A new consultation, scheduled while the trail takes every entry. */
  async function scheduled(patientId: string) {
    await u.sql('drop trigger if exists refuse_audit on audit_entry');
    const { consultation } = await scheduleConsultation(
      u.deps,
      callerOf('service', 'appointments'),
      {
        appointmentId: appointmentId('unaudited'),
        doctorId: 'doc-u',
        patientId,
        scheduledStart: new Date(Date.now() + 5 * 60_000),
        scheduledEnd: new Date(Date.now() + 35 * 60_000),
        provider: undefined,
      },
    );
    return consultation;
  }

  const failure = (call: Promise<unknown>) =>
    call.then(
      (answer) => ({ answered: answer }),
      (error: unknown) => error,
    );

  it('answers a refusal as a refusal, and logs and counts it as not audited', async () => {
    const consultation = await scheduled('pat-u1');
    await refuseAuditEntries(`new.outcome <> 'allowed'`);

    const intruder = callerOf('patient', 'pat-other', 'clinic-1', { requestId: 'req-unaudited' });
    const refused = await failure(
      getConsultationStatus(u.deps, intruder, { consultationId: consultation.id }),
    );

    expect(refused).toBeInstanceOf(DomainError);
    expect(refused).toMatchObject({ code: 'not_found' });
    expect(u.refusalsNotAudited()).toBe(1);
    const lines = u.logLines().filter((line) => String(line.msg).startsWith('refusal not audited'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 50,
      requestId: 'req-unaudited',
      actorId: 'pat-other',
      actorRole: 'patient',
      clinicId: 'clinic-1',
      action: 'consultation.read',
      resourceId: consultation.id,
      outcome: 'not_found',
    });
  });

  it('answers an error, not the data, to a read whose entry cannot be written', async () => {
    const consultation = await scheduled('pat-u2');
    await refuseAuditEntries('true');
    const read = await failure(
      getConsultationStatus(u.deps, callerOf('doctor', 'doc-u'), {
        consultationId: consultation.id,
      }),
    );
    expect(read).toBeInstanceOf(Error);
    expect(read).not.toHaveProperty('answered');
  });

  it('rolls a change back with its entry: neither commits without the other', async () => {
    const consultation = await scheduled('pat-u3');
    await refuseAuditEntries('true');
    const cancel = await failure(
      cancelConsultation(u.deps, callerOf('service', 'appointments'), {
        consultationId: consultation.id,
      }),
    );
    expect(cancel).toBeInstanceOf(Error);
    const [row] = await u.sql<{ status: string; version: number }>(
      'select status, version from consultation where id = ?',
      [consultation.id],
    );
    expect(row).toEqual({ status: 'scheduled', version: 1 });
    const [events] = await u.sql<{ n: string | number }>(
      'select count(*) as n from outbox_message where subject = ?',
      [consultation.id],
    );
    expect(Number(events?.n)).toBe(0);
  });
});
