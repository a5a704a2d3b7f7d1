import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Principal } from '../../src/domain/access.js';
import { checkIn } from '../../src/video/use-cases/check-in.js';
import { readWaitingRoom } from '../../src/video/use-cases/list-waiting-room.js';
import { scheduleConsultation } from '../../src/video/use-cases/schedule-consultation.js';
import { appointmentId } from '../support/clients.js';
import { recordQueries } from '../support/statements.js';
import { callerOf, openTestUseCases, type TestUseCases } from '../support/use-cases.js';

/**
 * The waiting room's queries must cost what the waiting room holds, not what the clinic
 * ever had: on a clinic with a long history (20,000 closed consultations whose patients
 * checked in and were never let in, the worst case for these queries) and three patients
 * waiting now, each query's plan reads only a handful of rows, and no table whole. The
 * plans are PostgreSQL's own (EXPLAIN ANALYZE of the very statements the service sends).
 */
const CLINIC = 'plan-clinic';
const DOCTOR = 'plan-doc';
const HISTORY = 20_000;
const WAITING = 3;
/** Rows the plan's scans may read in all: the live set and some slack, far below HISTORY. */
const MAX_ROWS_READ = 50;

let u: TestUseCases;
const service = callerOf('service', 'appointments', CLINIC);

beforeAll(async () => {
  u = await openTestUseCases();
  await u.sql(
    `insert into consultation (id, clinic_id, appointment_id, doctor_id, patient_id,
       scheduled_start, scheduled_end, status, ended_at, created_at, updated_at)
     select gen_random_uuid(), ?, 'past-' || g, ?, 'past-patient-' || g,
       now() - g * interval '1 hour', now() - g * interval '1 hour' + interval '30 minutes',
       (array['ended', 'cancelled', 'no_show'])[1 + g % 3],
       now() - g * interval '1 hour' + interval '30 minutes', now(), now()
     from generate_series(1, ?) as g`,
    [CLINIC, DOCTOR, HISTORY],
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
  await u.sql('analyze');
}, 120_000);
afterAll(async () => {
  await u?.stop();
});

interface PlanNode {
  readonly 'Node Type': string;
  readonly 'Relation Name'?: string;
  readonly 'Index Name'?: string;
  readonly 'Actual Rows': number;
  readonly 'Actual Loops': number;
  readonly Plans?: readonly PlanNode[];
}

/** Every scan of the plan: what it read, and how many rows over all its loops. */
function scans(node: PlanNode): { scan: string; rows: number }[] {
  const own = node['Node Type'].includes('Scan')
    ? [
        {
          scan: `${node['Node Type']} ${node['Relation Name'] ?? ''} ${node['Index Name'] ?? ''}`.trim(),
          rows: node['Actual Rows'] * node['Actual Loops'],
        },
      ]
    : [];
  return [...own, ...(node.Plans ?? []).flatMap(scans)];
}

/** The scans of the statements `work` sends that read the waiting room's tables. */
async function plansOf(work: () => Promise<unknown>) {
  const queries = (await recordQueries(work)).filter((q) =>
    /^select .* from "participant"/is.test(q.trim()),
  );
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

function expectLiveSetOnly(plans: { scan: string; rows: number }[][]) {
  for (const plan of plans) {
    expect(plan.filter((s) => s.scan.startsWith('Seq Scan'))).toEqual([]);
    const read = plan.reduce((sum, s) => sum + s.rows, 0);
    expect(read, JSON.stringify(plan)).toBeLessThanOrEqual(MAX_ROWS_READ);
  }
}

describe('the waiting room on a clinic with a long history', () => {
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
