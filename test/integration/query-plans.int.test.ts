import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Principal } from '../../src/domain/access.js';
import { outboxClaims } from '../../src/messaging/outbox-claims.js';
import { createAttendance } from '../../src/video/attendance.js';
import { createReconciler } from '../../src/video/reconciler.js';
import { createSweeper } from '../../src/video/sweeper.js';
import { checkIn } from '../../src/video/use-cases/check-in.js';
import { listAuditEntries } from '../../src/video/use-cases/list-audit-entries.js';
import { listConsultationHistory } from '../../src/video/use-cases/list-consultation-history.js';
import { readWaitingRoom } from '../../src/video/use-cases/list-waiting-room.js';
import { scheduleConsultation } from '../../src/video/use-cases/schedule-consultation.js';
import { latestTechnicalIssues } from '../../src/video/use-cases/watch-consultation.js';
import { appointmentId } from '../support/clients.js';
import { recordQueries } from '../support/statements.js';
import { callerOf, openTestUseCases, type TestUseCases } from '../support/use-cases.js';

/**
 * Each call must cost what it answers, not what the clinic ever had. On a clinic with a
 * long history (20,000 closed consultations, each with a provider session both
 * participants joined and left and a technical issue, whose patients checked in and were
 * never let in, the worst case for the waiting room; 20,000 audit
 * entries; 20,000 events already sent) and three patients waiting now: the waiting
 * room's queries and the background passes read only the open rows, and a page of a list
 * reads about a page, however deep. No plan reads a table whole. The plans are
 * PostgreSQL's own (EXPLAIN ANALYZE of the very statements the service sends).
 */
const CLINIC = 'plan-clinic';
const DOCTOR = 'plan-doc';
const HISTORY = 20_000;
const WAITING = 3;
/** Rows the plan's scans may read in all: the live set and some slack, far below HISTORY. */
const MAX_ROWS_READ = 50;
/** The tables of the keyset pages, read before and after PostgreSQL has statistics. */
const KEYSET_TABLES = ['consultation', 'participant', 'audit_entry', 'technical_issue'];

let u: TestUseCases;
const service = callerOf('service', 'appointments', CLINIC);

beforeAll(async () => {
  u = await openTestUseCases();
  // The first tests read the tables before PostgreSQL analyzed them: where autovacuum runs,
  // it must not analyze them in the meantime.
  for (const table of KEYSET_TABLES) {
    await u.sql(`alter table ${table} set (autovacuum_enabled = false)`);
  }
  await u.sql(
    `insert into consultation (id, clinic_id, appointment_id, doctor_id, patient_id,
       scheduled_start, scheduled_end, status, ended_at, provider, provider_session_id,
       created_at, updated_at)
     select gen_random_uuid(), ?, 'past-' || g, ?, 'past-patient-' || g,
       now() - g * interval '1 hour', now() - g * interval '1 hour' + interval '30 minutes',
       (array['ended', 'cancelled', 'no_show'])[1 + g % 3],
       now() - g * interval '1 hour' + interval '30 minutes', 'jitsi', 'past-room-' || g,
       now(), now()
     from generate_series(1, ?) as g`,
    [CLINIC, DOCTOR, HISTORY],
  );
  await u.sql(
    `insert into audit_entry (id, at, actor_id, actor_role, clinic_id, action, resource_type,
       resource_id, outcome)
     select gen_random_uuid(), now() - g * interval '1 minute', 'past-patient-' || g,
       'patient', ?, 'consultation.read', 'consultation', gen_random_uuid()::text, 'allowed'
     from generate_series(1, ?) as g`,
    [CLINIC, HISTORY],
  );
  await u.sql(
    `insert into outbox_message (id, type, key, subject, clinic_id, payload, created_at, sent_at)
     select gen_random_uuid(), 'video.consultation.ended', 'past-' || g, 'past-' || g, ?,
       '{}'::jsonb, now() - g * interval '1 minute', now() - g * interval '1 minute'
     from generate_series(1, ?) as g`,
    [CLINIC, HISTORY],
  );
  await u.sql(
    `insert into participant (id, consultation_id, clinic_id, user_id, role, checked_in_at)
     select gen_random_uuid(), c.id, c.clinic_id, p.user_id, p.role,
       case when p.role = 'patient' then c.scheduled_start end
     from consultation c,
       lateral (values (c.doctor_id, 'doctor'), (c.patient_id, 'patient')) as p(user_id, role)
     where c.clinic_id = ?`,
    [CLINIC],
  );
  await u.sql(
    `insert into provider_connection (id, consultation_id, participant_id, clinic_id, provider,
       connection_id, joined_at, left_at, reason)
     select gen_random_uuid(), p.consultation_id, p.id, p.clinic_id, 'jitsi',
       'past-connection-' || p.id, c.scheduled_start, c.ended_at, 'disconnect'
     from participant p join consultation c on c.id = p.consultation_id
     where c.clinic_id = ?`,
    [CLINIC],
  );
  await u.sql(
    `insert into technical_issue (id, consultation_id, clinic_id, reporter_id, reporter_role,
       issue_type, description, reported_at)
     select gen_random_uuid(), c.id, c.clinic_id, c.patient_id, 'patient', 'video',
       'frozen picture', c.scheduled_start + interval '5 minutes'
     from consultation c where c.clinic_id = ?`,
    [CLINIC],
  );
  for (let n = 1; n <= WAITING; n++) {
    const start = new Date(Date.now() + 5 * 60_000);
    const { consultation } = await scheduleConsultation(u.deps, service, {
      appointmentId: appointmentId('plan'),
      doctorId: DOCTOR,
      patientId: `plan-patient-${n}`,
      scheduledStart: start,
      scheduledEnd: new Date(start.getTime() + 30 * 60_000),
      provider: undefined,
    });
    await checkIn(u.deps, callerOf('patient', `plan-patient-${n}`, CLINIC), {
      consultationId: consultation.id,
    });
  }
}, 120_000);
afterAll(async () => {
  await u?.stop();
});

/** The statistics a database has in steady use (autovacuum analyzes as rows change). */
let analyzed = false;
async function withStatistics() {
  if (analyzed) return;
  await u.sql('analyze');
  analyzed = true;
}

interface PlanNode {
  readonly 'Node Type': string;
  readonly 'Relation Name'?: string;
  readonly 'Index Name'?: string;
  readonly 'Actual Rows': number;
  readonly 'Actual Loops': number;
  readonly 'Rows Removed by Filter'?: number;
  readonly 'Rows Removed by Index Recheck'?: number;
  readonly Plans?: readonly PlanNode[];
}

/**
 * Every scan of the plan: what it read, and how many rows over all its loops (those it
 * passed on and those its filter threw away: it read both). A bitmap index scan right
 * under its heap scan found exactly the entries the heap scan then reads (and counts, with
 * those a lossy recheck threw away), so it is counted there once; under a BitmapAnd or
 * BitmapOr it may read far more entries than the heap scan keeps, and counts on its own.
 */
function scans(node: PlanNode, parent?: PlanNode): { scan: string; rows: number }[] {
  const countedByHeapScan =
    node['Node Type'] === 'Bitmap Index Scan' && parent?.['Node Type'] === 'Bitmap Heap Scan';
  const own =
    node['Node Type'].includes('Scan') && !countedByHeapScan
      ? [
          {
            scan: `${node['Node Type']} ${node['Relation Name'] ?? ''} ${node['Index Name'] ?? ''}`.trim(),
            rows:
              (node['Actual Rows'] +
                (node['Rows Removed by Filter'] ?? 0) +
                (node['Rows Removed by Index Recheck'] ?? 0)) *
              node['Actual Loops'],
          },
        ]
      : [];
  return [...own, ...(node.Plans ?? []).flatMap((child) => scans(child, node))];
}

/** The waiting room's statements: those that read its tables. */
const WAITING_ROOM = /^select .* from "participant"/is;

/** The scans of each statement `work` sends that `statements` picks. */
async function plansOf(work: () => Promise<unknown>, statements = WAITING_ROOM) {
  const queries = (await recordQueries(work)).filter((q) => statements.test(q.trim()));
  expect(queries.length).toBeGreaterThan(0);
  return Promise.all(
    queries.map(async (query) => {
      const [row] = await u.sql<{ 'QUERY PLAN': unknown }>(
        `explain (analyze, format json) ${query}`,
      );
      const plan = row!['QUERY PLAN'];
      const [top] = (typeof plan === 'string' ? JSON.parse(plan) : plan) as { Plan: PlanNode }[];
      return scans(top!.Plan);
    }),
  );
}

/** No plan reads a table whole, nor more than `most` rows in all its scans. */
function expectLiveSetOnly(plans: { scan: string; rows: number }[][], most = MAX_ROWS_READ) {
  for (const plan of plans) {
    expect(
      plan.filter((s) => s.scan.startsWith('Seq Scan')),
      JSON.stringify(plan),
    ).toEqual([]);
    const read = plan.reduce((sum, s) => sum + s.rows, 0);
    expect(read, JSON.stringify(plan)).toBeLessThanOrEqual(most);
  }
}

/** A first page as the apps ask for it. */
const FIRST_PAGE = 20;
/** A first page's statement may read its rows and their participants, and some slack. */
const FIRST_PAGE_ROWS_READ = 3 * (FIRST_PAGE + 1) + MAX_ROWS_READ;

// These run first: PostgreSQL has not analyzed the seeded tables yet, as on a new
// database or one whose autovacuum is behind (or off), and estimates a doctor's share of
// them at a row or two. The page must still come from its index in order, not from
// sorting everything that doctor ever had (as it did while the index ended at the time). (A clinic-wide
// list is estimated at many rows without statistics, and is read and sorted until
// PostgreSQL has them: the later tests run with statistics, as a database in use has.)
describe("the doctor's first page, before PostgreSQL has statistics", () => {
  it("reads the first page of the doctor's history, not the whole history", async () => {
    let listed = 0;
    const plans = await plansOf(async () => {
      const page = await listConsultationHistory(u.deps, callerOf('doctor', DOCTOR, CLINIC), {
        pageSize: FIRST_PAGE,
        pageToken: '',
        statuses: [],
        scheduledFrom: undefined,
        scheduledTo: undefined,
      });
      listed = page.consultations.length;
    }, /^select .* from "consultation"/is);
    expect(listed).toBe(FIRST_PAGE);
    expectLiveSetOnly(plans, FIRST_PAGE_ROWS_READ);
  });
});

describe('the waiting room on a clinic with a long history', () => {
  beforeAll(withStatistics);

  it('finds a patient’s place in the queue by reading the open consultations only', async () => {
    const patient = callerOf('patient', 'plan-patient-2', CLINIC);
    const [mine] = await u.sql<{ id: string }>(
      `select id from consultation where clinic_id = ? and patient_id = 'plan-patient-2'`,
      [CLINIC],
    );
    let place = 0;
    const plans = await plansOf(async () => {
      // Checking in again answers the place and changes nothing.
      place = (await checkIn(u.deps, patient, { consultationId: mine!.id })).queuePosition;
    });
    expect(place).toBe(2);
    expectLiveSetOnly(plans);
  });

  it('lists the waiting room by reading the open consultations only', async () => {
    const doctor: Principal = { userId: DOCTOR, role: 'doctor', clinicId: CLINIC };
    let listed = 0;
    const plans = await plansOf(async () => {
      listed = (await readWaitingRoom(u.deps.orm.em.fork(), doctor, '', new Date())).length;
    });
    expect(listed).toBe(WAITING);
    expectLiveSetOnly(plans);
  });
});

/** Pages of 100 rows, 50 deep: 5,000 rows behind the cursor. */
const PAGE = 100;
const DEPTH = 50;
/** A page's statement may read its rows, their participants (two each) and some slack. */
const PAGE_ROWS_READ = 3 * (PAGE + 1) + MAX_ROWS_READ;

/** Pages `list` from the first page to DEPTH pages deep; answers the next page's token. */
async function deepToken(list: (pageToken: string) => Promise<string>): Promise<string> {
  let token = '';
  for (let page = 0; page < DEPTH; page++) {
    token = await list(token);
    expect(token).not.toBe('');
  }
  return token;
}

describe('lists on a clinic with a long history', () => {
  beforeAll(withStatistics);

  const admin = callerOf('clinic_admin', 'plan-admin', CLINIC);
  const doctor = callerOf('doctor', DOCTOR, CLINIC);
  const history = (caller: typeof admin, pageToken: string) =>
    listConsultationHistory(u.deps, caller, {
      pageSize: PAGE,
      pageToken,
      statuses: [],
      scheduledFrom: undefined,
      scheduledTo: undefined,
    });

  it.each([
    ['a clinic admin', admin],
    ['the doctor', doctor],
  ])('reads a deep page of the history from its cursor, not from the top (%s)', async (_, who) => {
    const token = await deepToken(async (t) => (await history(who, t)).nextPageToken);
    let listed = 0;
    const plans = await plansOf(async () => {
      listed = (await history(who, token)).consultations.length;
    }, /^select .* from "consultation"/is);
    expect(listed).toBe(PAGE);
    expectLiveSetOnly(plans, PAGE_ROWS_READ);
  });

  const trail = (pageToken: string) =>
    listAuditEntries(u.deps, admin, {
      pageSize: PAGE,
      pageToken,
      actorId: '',
      resourceId: '',
      action: '',
      from: undefined,
      to: undefined,
    });

  it('reads the first page of the audit trail without sorting the whole trail', async () => {
    const plans = await plansOf(() => trail(''), /^(select|\(select) .* from "audit_entry"/is);
    expectLiveSetOnly(plans, PAGE_ROWS_READ);
  });

  it('reads a deep page of the audit trail from its cursor, not from the top', async () => {
    const token = await deepToken(async (t) => (await trail(t)).nextPageToken);
    let listed = 0;
    const plans = await plansOf(async () => {
      listed = (await trail(token)).entries.length;
    }, /^(select|\(select) .* from "audit_entry"/is);
    expect(listed).toBe(PAGE);
    expectLiveSetOnly(plans, PAGE_ROWS_READ);
  });
});

describe('the background passes on a clinic with a long history', () => {
  beforeAll(withStatistics);

  it('finds what the sweeper must close among the open consultations only', async () => {
    const sweeper = createSweeper({
      orm: u.database.orm,
      providers: u.deps.providers,
      clock: u.deps.clock,
      logger: u.deps.logger,
      rules: u.config.consultation,
      intervalMs: 60_000,
    });
    const plans = await plansOf(() => sweeper.sweepOnce(), /^select .* from consultation/is);
    expectLiveSetOnly(plans);
  });

  it('finds what the reconciler must check among the open consultations only', async () => {
    const { orm } = u.database;
    const reconciler = createReconciler({
      orm,
      providers: u.deps.providers,
      attendance: createAttendance({ orm, clock: u.deps.clock, logger: u.deps.logger }),
      clock: u.deps.clock,
      logger: u.deps.logger,
      intervalMs: 60_000,
    });
    const plans = await plansOf(() => reconciler.reconcileOnce(), /^select .* from consultation/is);
    expectLiveSetOnly(plans);
  });

  it('counts the outbox backlog from the pending events only', async () => {
    const claims = outboxClaims(u.database.orm, { batchSize: 100, leaseMs: 10_000 });
    const plans = await plansOf(() => claims.backlog(), /^select count\(\*\)/is);
    expectLiveSetOnly(plans);
  });
});

describe('what belongs to one consultation, on a clinic with a long history', () => {
  beforeAll(withStatistics);

  const past = async () => {
    const [row] = await u.sql<{ id: string; session: string; patient: string }>(
      `select c.id, c.provider_session_id as session, p.id as patient
         from consultation c join participant p on p.consultation_id = c.id and p.role = 'patient'
        where c.clinic_id = ? and c.appointment_id = 'past-7'`,
      [CLINIC],
    );
    return row!;
  };

  it("recomputes a participant's attendance from that participant's connections only", async () => {
    const consultation = await past();
    const attendance = createAttendance({
      orm: u.database.orm,
      clock: u.deps.clock,
      logger: u.deps.logger,
    });
    let outcome = '';
    const plans = await plansOf(async () => {
      outcome = await attendance.recordConnection({
        eventId: `late-join-${consultation.id}`,
        provider: 'jitsi',
        sessionId: consultation.session,
        connectionId: `late-connection-${consultation.id}`,
        participantId: consultation.patient,
        kind: 'joined',
        at: new Date(),
      });
    }, /^select .* from "provider_connection"/is);
    expect(outcome).toBe('applied');
    expectLiveSetOnly(plans);
  });

  it('reads the latest technical issues of the consultation only', async () => {
    const consultation = await past();
    let issues = 0;
    const plans = await plansOf(async () => {
      issues = (await latestTechnicalIssues(u.deps, consultation.id)).length;
    }, /^select .* from "technical_issue"/is);
    expect(issues).toBe(1);
    expectLiveSetOnly(plans);
  });
});
