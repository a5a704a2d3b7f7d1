/**
 * The rows of the scale measurement (scale.ts), written with plain SQL: the few live
 * consultations both of its databases hold, and the history only the seeded one holds.
 *
 * The history is one clinic's past as the service itself would have left it: consultations
 * in their final states (ended 80%, cancelled 12%, no show 8%) one every ~10 minutes over
 * two years, the measured doctor's every other one (the rest spread over nine colleagues)
 * and the patients drawn from a pool of 5 000, among them the patients the measurement's
 * visits use; each consultation with its doctor and patient rows (check-in, admission,
 * first token, attendance as the service records them), the provider connections of the
 * ended ones, a technical issue on one in twenty of those, its audit entries (10 for an
 * ended one, the reads included, 4–5 for the others) and the clinic's list reads up to one
 * million entries in all, its events in the outbox, all marked sent (the relay marks rows
 * sent and never deletes them), and its inbox entries (the appointment events that created
 * and cancelled them, the provider's webhooks for OpenVidu sessions; the inbox is never
 * pruned either). Each table is filled by one `insert … select … from generate_series` (or
 * from the rows already written), not row by row, in a session with
 * `session_replication_role = replica`: the foreign keys are not checked row by row (the
 * rows are made consistent) and the `consultation_created` trigger does not NOTIFY 100 000
 * times. Then `vacuum (analyze)`, as autovacuum would have done long before a clinic's
 * second year.
 */
import type pg from 'pg';
import { CLINIC, DOCTOR, PATIENT, withClient } from './fixture.js';

/** How large the history is. */
export interface HistoryShape {
  /** Past consultations, all in a final state. */
  readonly consultations: number;
  /** Audit entries in all (the consultations' own, then the clinic's list reads up to this). */
  readonly auditEntries: number;
  /** The span of their scheduled starts, ending a day before now. */
  readonly days: number;
}

/** Rows per table after seeding, as counted in the database. */
export type TableCounts = Readonly<Record<(typeof COUNTED_TABLES)[number], number>>;

/** The clinic's admin: schedules and cancels the visits' consultations, reads the audit trail. */
export const ADMIN = 'bench-admin';
/** The measured doctor's colleagues in the history: DOCTOR-1 … DOCTOR-9. */
const COLLEAGUES = 9;
/** History patients are PATIENT-0 … PATIENT-4999 (`patientOf`). */
const PATIENT_POOL = 5_000;
/** The prefix of the history's appointment ids; the number after it is the row's `g`. */
const HISTORY_APPOINTMENT = 'history-apt-';

/** Patient n of the clinic (0 ≤ n < 5 000 have a history in the seeded database). */
export const patientOf = (n: number) => `${PATIENT}-${n}`;

/**
 * The consultations live in both databases, the measured doctor's: two scheduled for later
 * today, two whose patients wait (checked in, not admitted), one in progress (admitted,
 * started, its session open). They give ListWaitingRoom a queue, the reconciler a session
 * to claim, and stay as they are during the run (the visits act on consultations of their
 * own). Their patients are PATIENT-1000 … PATIENT-1004.
 */
const STANDING = [
  { status: 'scheduled', startsInMinutes: 120 },
  { status: 'scheduled', startsInMinutes: 180 },
  { status: 'waiting', startsInMinutes: -5 },
  { status: 'waiting', startsInMinutes: -2 },
  { status: 'in_progress', startsInMinutes: -10 },
] as const;

export const STANDING_CONSULTATIONS = STANDING.length;

/** The live consultations both databases hold (STANDING), with their participants. */
export async function seedStanding(databaseUrl: string): Promise<void> {
  const spec = STANDING.map((s, n) => ({
    n,
    status: s.status,
    minutes: s.startsInMinutes,
    patient: patientOf(1000 + n),
  }));
  await withClient(databaseUrl, async (client) => {
    await client.query(
      `insert into consultation (id, clinic_id, appointment_id, doctor_id, patient_id,
         scheduled_start, scheduled_end, status, provider, provider_session_id, started_at,
         version, created_at, updated_at)
       select gen_random_uuid(), $2, 'live-apt-' || s.n, $3, s.patient,
         now() + s.minutes * interval '1 minute', now() + (s.minutes + 30) * interval '1 minute',
         s.status, 'jitsi',
         case when s.status = 'in_progress' then 'live-room-' || s.n end,
         case when s.status = 'in_progress' then now() - interval '5 minutes' end,
         1, now() - interval '2 days', now()
       from jsonb_to_recordset($1::jsonb) as s(n int, status text, minutes int, patient text)`,
      [JSON.stringify(spec), CLINIC, DOCTOR],
    );
    await client.query(
      `insert into participant (id, consultation_id, clinic_id, user_id, role, checked_in_at,
         admitted_at, first_token_at)
       select gen_random_uuid(), c.id, c.clinic_id, p.user_id, p.role, p.checked_in_at,
         p.admitted_at, p.first_token_at
       from consultation c,
         lateral (values
           (c.doctor_id, 'doctor', null::timestamptz, null::timestamptz, c.started_at),
           (c.patient_id, 'patient',
             case when c.status in ('waiting', 'in_progress')
               then c.scheduled_start + interval '1 minute' end,
             c.started_at - interval '1 minute', c.started_at)
         ) as p(user_id, role, checked_in_at, admitted_at, first_token_at)
       where c.appointment_id like 'live-apt-%'`,
    );
    await client.query('vacuum (analyze)');
  });
}

/**
 * A consultation the sweeper has to close: scheduled, its slot over an hour ago, its
 * patient never joined (a no-show). One is added before each timed sweeper pass.
 */
export async function addOverdueConsultation(databaseUrl: string, n: number): Promise<void> {
  await withClient(databaseUrl, (client) =>
    client.query(
      `with c as (
         insert into consultation (id, clinic_id, appointment_id, doctor_id, patient_id,
           scheduled_start, scheduled_end, status, provider, version, created_at, updated_at)
         values (gen_random_uuid(), $1, $2, $3, $4, now() - interval '90 minutes',
           now() - interval '60 minutes', 'scheduled', 'jitsi', 1, now() - interval '1 day',
           now() - interval '1 day')
         returning id, doctor_id, patient_id
       )
       insert into participant (id, consultation_id, clinic_id, user_id, role)
       select gen_random_uuid(), c.id, $1, p.user_id, p.role
       from c, lateral (values (c.doctor_id, 'doctor'), (c.patient_id, 'patient')) as p(user_id, role)`,
      [CLINIC, `overdue-apt-${n}`, DOCTOR, patientOf(2000 + n)],
    ),
  );
}

/** Seeds the history into `databaseUrl` (after the schema, before the live rows). */
export async function seedHistory(databaseUrl: string, shape: HistoryShape): Promise<TableCounts> {
  return withClient(databaseUrl, async (client) => {
    await client.query('set session_replication_role = replica');
    await insertConsultations(client, shape);
    await insertParticipants(client);
    await insertProviderConnections(client);
    await insertTechnicalIssues(client);
    await insertConsultationAudit(client);
    await insertListAudit(client, shape);
    await insertSentEvents(client);
    await insertInbox(client);
    await client.query('reset session_replication_role');
    await client.query('vacuum (analyze)');
    return countRows(client);
  });
}

/** The history's number `g` of a consultation row `c` (from its appointment id). */
const G = `substr(c.appointment_id, ${HISTORY_APPOINTMENT.length + 1})::int`;
const HISTORY_ROWS = `c.clinic_id = '${CLINIC}' and c.appointment_id like '${HISTORY_APPOINTMENT}%'`;

/**
 * Consultation g (1 … n) is scheduled (n − g) × span/n before a day ago, so g grows with
 * time. Its state follows g mod 25 (ended, cancelled, no show: 20/3/2), its doctor g mod 2
 * (the measured doctor for even g, else a colleague by g mod 9), its patient a hash of g,
 * its provider g mod 7 (OpenVidu for one in seven, recorded for one in eleven of those).
 */
async function insertConsultations(client: pg.Client, shape: HistoryShape): Promise<void> {
  await client.query(
    `insert into consultation (id, clinic_id, appointment_id, doctor_id, patient_id,
       scheduled_start, scheduled_end, status, provider, provider_session_id, started_at,
       ended_at, duration_seconds, end_reason, recording_id, recording_status, recording_url,
       reconciled_at, version, created_at, updated_at)
     select gen_random_uuid(), $1, '${HISTORY_APPOINTMENT}' || g,
       case when g % 2 = 0 then $2 else $2 || '-' || (g % ${COLLEAGUES} + 1) end,
       $3 || '-' || abs(hashint4(g) % ${PATIENT_POOL}),
       s.start, s.start + interval '30 minutes', s.status, s.provider,
       case when s.status <> 'cancelled' then 'history-room-' || g end,
       t.started, t.ended,
       extract(epoch from t.ended - t.started)::int,
       case when s.status <> 'ended' then s.status
            when g % 40 = 1 then 'provider_closed' else 'completed' end,
       r.id, case when r.id is not null then 'ready' end,
       case when r.id is not null then 'https://recordings.example/' || r.id end,
       case when s.status = 'ended' then t.ended - interval '1 minute' end,
       case s.status when 'ended' then 7 else 2 end,
       s.start - (g % 30 + 1) * interval '1 day', t.ended
     from generate_series(1, $4::int) as g,
       lateral (select
         now() - interval '1 day' - ($4::int - g) * ($5::int * interval '1 day') / $4::int as start,
         case when g % 25 < 20 then 'ended' when g % 25 < 23 then 'cancelled' else 'no_show' end
           as status,
         case when g % 7 = 0 then 'openvidu' else 'jitsi' end as provider) s,
       lateral (select
         case when s.status = 'ended' then s.start + (g % 7) * interval '1 minute' end as started,
         case s.status
           when 'ended' then s.start + (g % 7) * interval '1 minute'
             + (900 + g * 37 % 1200) * interval '1 second'
           when 'cancelled' then s.start - (g % 20 + 1) * interval '1 hour'
           else s.start + interval '40 minutes' end as ended) t,
       lateral (select case when s.status = 'ended' and s.provider = 'openvidu' and g % 11 = 0
         then 'history-rec-' || g end as id) r`,
    [CLINIC, DOCTOR, PATIENT, shape.consultations, shape.days],
  );
}

/**
 * The doctor and the patient of each: in an ended one the patient checked in, was
 * admitted, got a token and stayed to the end, as did the doctor; in a no-show the doctor
 * got a token and nobody joined; in a cancelled one nobody did anything.
 */
async function insertParticipants(client: pg.Client): Promise<void> {
  await client.query(
    `insert into participant (id, consultation_id, clinic_id, user_id, role, checked_in_at,
       admitted_at, first_token_at, first_joined_at, last_left_at, connected_seconds,
       connected, last_disconnect_reason)
     select gen_random_uuid(), c.id, c.clinic_id, p.user_id, p.role, p.checked_in_at,
       p.admitted_at, p.first_token_at, p.first_joined_at,
       case when c.started_at is not null then c.ended_at end,
       greatest(coalesce(c.duration_seconds - p.late_seconds, 0), 0), false,
       case when c.started_at is not null then 'left' end
     from consultation c,
       lateral (values
         (c.doctor_id, 'doctor', null::timestamptz, null::timestamptz,
           coalesce(c.started_at - interval '1 minute',
             case when c.status = 'no_show' then c.scheduled_start end),
           c.started_at, 0),
         (c.patient_id, 'patient', c.started_at - interval '3 minutes',
           c.started_at - interval '1 minute', c.started_at,
           c.started_at + interval '10 seconds', 10)
       ) as p(user_id, role, checked_in_at, admitted_at, first_token_at, first_joined_at,
         late_seconds)
     where ${HISTORY_ROWS}`,
  );
}

/** Each participant who joined had one connection to the provider's session, closed. */
async function insertProviderConnections(client: pg.Client): Promise<void> {
  await client.query(
    `insert into provider_connection (id, consultation_id, participant_id, clinic_id, provider,
       connection_id, joined_at, left_at, reason)
     select gen_random_uuid(), c.id, p.id, c.clinic_id, c.provider, 'history-con-' || p.id,
       p.first_joined_at, p.last_left_at, 'left'
     from participant p join consultation c on c.id = p.consultation_id
     where ${HISTORY_ROWS} and p.first_joined_at is not null`,
  );
}

/** One ended consultation in twenty had a technical problem its patient reported. */
async function insertTechnicalIssues(client: pg.Client): Promise<void> {
  await client.query(
    `insert into technical_issue (id, consultation_id, clinic_id, reporter_id, reporter_role,
       issue_type, description, reported_at)
     select gen_random_uuid(), c.id, c.clinic_id, c.patient_id, 'patient',
       (array['audio', 'video', 'connection', 'other'])[${G} / 20 % 4 + 1],
       'The picture froze for a few seconds', c.started_at + interval '4 minutes'
     from consultation c
     where ${HISTORY_ROWS} and c.status = 'ended' and ${G} % 20 = 0`,
  );
}

/**
 * Each consultation's audit entries, as the use cases write them: scheduled through the
 * appointment events (the service's actor), then per final state the calls that led there,
 * the status reads of both sides included.
 */
async function insertConsultationAudit(client: pg.Client): Promise<void> {
  const service = `'appointment-service', 'service'`;
  const doctor = `c.doctor_id, 'doctor'`;
  const patient = `c.patient_id, 'patient'`;
  const admin = `'${ADMIN}', 'clinic_admin'`;
  const sweeper = `'system:sweeper', 'service'`;
  const s = (minutes: number) => `c.started_at + interval '${minutes} minutes'`;
  const at = (column: string, minutes: number) => `c.${column} + interval '${minutes} minutes'`;
  const entries: Record<'ended' | 'cancelled' | 'no_show', string[]> = {
    ended: [
      `('consultation.schedule', ${service}, c.created_at)`,
      `('consultation.check_in', ${patient}, ${s(-3)})`,
      `('consultation.read', ${patient}, ${s(-2)})`,
      `('consultation.admit', ${doctor}, ${s(-1)})`,
      `('consultation.start', ${doctor}, c.started_at)`,
      `('consultation.join', ${doctor}, ${s(0.1)})`,
      `('consultation.join', ${patient}, ${s(0.2)})`,
      `('consultation.read', ${patient}, ${s(5)})`,
      `('consultation.read', ${doctor}, ${s(10)})`,
      `('consultation.end', ${doctor}, c.ended_at)`,
    ],
    cancelled: [
      `('consultation.schedule', ${service}, c.created_at)`,
      `('consultation.read', ${patient}, ${at('created_at', 60)})`,
      `('consultation.read', ${doctor}, ${at('ended_at', -60)})`,
      `('consultation.cancel', ${admin}, c.ended_at)`,
    ],
    no_show: [
      `('consultation.schedule', ${service}, c.created_at)`,
      `('consultation.read', ${doctor}, c.scheduled_start)`,
      `('consultation.join', ${doctor}, ${at('scheduled_start', 1)})`,
      `('consultation.read', ${doctor}, ${at('scheduled_start', 15)})`,
      `('consultation.no_show', ${sweeper}, c.ended_at)`,
    ],
  };
  for (const [status, values] of Object.entries(entries)) {
    await client.query(
      `insert into audit_entry (id, at, actor_id, actor_role, clinic_id, action, resource_type,
         resource_id, outcome, request_id, client_address, user_agent)
       select gen_random_uuid(), a.at, a.actor_id, a.actor_role, c.clinic_id, a.action,
         'consultation', c.id::text, 'allowed', gen_random_uuid()::text,
         '10.20.' || (${G} % 250) || '.' || (${G} * 7 % 250), 'connect-es/2.2.0'
       from consultation c,
         lateral (values ${values.join(', ')}) as a(action, actor_id, actor_role, at)
       where ${HISTORY_ROWS} and c.status = $1`,
      [status],
    );
  }
}

/**
 * The clinic's list reads (no resource): the doctors' history and waiting-room lists and
 * the admin's audit reads, spread evenly over the span, as many as make `auditEntries`.
 */
async function insertListAudit(client: pg.Client, shape: HistoryShape): Promise<void> {
  const { rows } = await client.query<{ count: string }>('select count(*) from audit_entry');
  const remaining = shape.auditEntries - Number(rows[0]?.count ?? 0);
  if (remaining <= 0) return;
  await client.query(
    `insert into audit_entry (id, at, actor_id, actor_role, clinic_id, action, resource_type,
       resource_id, outcome, request_id, client_address, user_agent)
     select gen_random_uuid(),
       now() - interval '1 day' - ($1::int - g) * ($2::int * interval '1 day') / $1::int,
       l.actor_id, l.actor_role, $3, l.action, 'consultation', null, 'allowed',
       gen_random_uuid()::text, '10.30.' || (g % 250) || '.1', 'connect-es/2.2.0'
     from generate_series(1, $1::int) as g,
       lateral (select * from (values
         (0, $4 || '-' || (g % ${COLLEAGUES} + 1), 'doctor', 'history.list'),
         (1, $4, 'doctor', 'waiting_room.list'),
         (2, $5, 'clinic_admin', 'audit.list')
       ) as v(k, actor_id, actor_role, action) where v.k = g % 3) l`,
    [remaining, shape.days, CLINIC, DOCTOR, ADMIN],
  );
}

/**
 * The events the history's changes put in the outbox, in commit order (`seq`), each
 * published 30 ms later: waiting, the two tokens, started and ended for an ended one;
 * cancelled; the doctor's token and no_show for a no-show; issue reports.
 */
async function insertSentEvents(client: pg.Client): Promise<void> {
  await client.query(
    `insert into outbox_message (id, type, key, subject, clinic_id, payload, created_at,
       sent_at, attempts)
     select gen_random_uuid(), e.type, c.appointment_id, c.id::text, c.clinic_id,
       jsonb_build_object('appointmentId', c.appointment_id, 'consultationId', c.id,
         'clinicId', c.clinic_id, 'at', e.at),
       e.at, e.at + interval '30 milliseconds', 1
     from consultation c left join technical_issue i on i.consultation_id = c.id,
       lateral (values
         ('video.patient.waiting', c.started_at - interval '3 minutes'),
         ('video.token.generated', coalesce(c.started_at - interval '1 minute',
           case when c.status = 'no_show' then c.scheduled_start end)),
         ('video.consultation.started', c.started_at),
         ('video.token.generated', c.started_at + interval '10 seconds'),
         ('video.technical.issue.reported', i.reported_at),
         ('video.consultation.ended', case when c.status = 'ended' then c.ended_at end),
         ('video.consultation.cancelled', case when c.status = 'cancelled' then c.ended_at end),
         ('video.consultation.no_show', case when c.status = 'no_show' then c.ended_at end)
       ) as e(type, at)
     where ${HISTORY_ROWS} and e.at is not null
     order by e.at`,
  );
}

/**
 * The inbox: the appointment events that scheduled (and cancelled) the consultations, and
 * the OpenVidu webhooks of their participants' joins and leaves.
 */
async function insertInbox(client: pg.Client): Promise<void> {
  await client.query(
    `insert into inbox_message (source, event_id, topic, handled_at)
     select '/appointment-service', gen_random_uuid()::text, e.topic, e.at
     from consultation c,
       lateral (values
         ('appointment.created', c.created_at),
         ('appointment.cancelled', case when c.status = 'cancelled' then c.ended_at end)
       ) as e(topic, at)
     where ${HISTORY_ROWS} and e.at is not null
     union all
     select 'webhook:openvidu', w.kind || '-' || pc.connection_id, 'webhook:openvidu', w.at
     from provider_connection pc,
       lateral (values ('participantJoined', pc.joined_at), ('participantLeft', pc.left_at))
         as w(kind, at)
     where pc.provider = 'openvidu' and pc.connection_id like 'history-con-%'`,
  );
}

const COUNTED_TABLES = [
  'consultation',
  'participant',
  'provider_connection',
  'technical_issue',
  'audit_entry',
  'outbox_message',
  'inbox_message',
] as const;

/** Rows per table of the database `client` is connected to. */
export async function countRows(client: pg.Client): Promise<TableCounts> {
  const { rows } = await client.query<Record<string, string>>(
    `select ${COUNTED_TABLES.map((t) => `(select count(*) from ${t}) as ${t}`).join(', ')}`,
  );
  const [row = {}] = rows;
  return Object.fromEntries(
    COUNTED_TABLES.map((table) => [table, Number(row[table] ?? 0)]),
  ) as TableCounts;
}
