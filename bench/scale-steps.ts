/**
 * What the scale measurement (scale.ts) does on each of its two databases, one step at a
 * time, each step one call whose time (or SQL, scale-plans.ts) a `Runner` takes:
 *
 * - a visit: a clinic admin schedules a consultation of the measured doctor starting in
 *   5 minutes, its patient checks in, the doctor lists the waiting room, admits the
 *   patient, starts, asks for a join token, the patient reads the consultation and reports
 *   a technical issue, the doctor ends it; then the admin schedules another one for
 *   tomorrow and cancels it. Every write acts on a consultation of its own, as a day in
 *   the clinic does, so each call does the same work however often it is measured;
 * - the reads: the doctor's history (first page, a filtered page, a deep page), the
 *   clinic's audit trail (first page, a deep page), and the service's `/readyz` and
 *   `/metrics`, which count the outbox backlog on every scrape;
 * - the background passes, called directly on the service's own sweeper and reconciler
 *   built in this process against the database (the service schedules the same functions
 *   on a timer): a sweeper pass with one no-show to close (added before the pass, not
 *   timed), a reconciler pass claiming the consultations in progress (its lease set to 0,
 *   so that every pass claims them as a pass every RECONCILE_INTERVAL_MS does).
 */
import { type Timestamp, timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { CallOptions } from '@connectrpc/connect';
import { ConsultationStatus } from '../gen/video/v1/consultation_pb.js';
import { TechnicalIssueType } from '../gen/video/v1/video_service_pb.js';
import type { Role } from '../src/domain/access.js';
import { systemClock } from '../src/domain/ports.js';
import { createLogger } from '../src/logger.js';
import { openDatabase } from '../src/persistence/database.js';
import { createConfiguredProviders } from '../src/providers/configured-providers.js';
import { createAttendance } from '../src/video/attendance.js';
import { createReconciler, type Reconciler } from '../src/video/reconciler.js';
import { createSweeper, type Sweeper } from '../src/video/sweeper.js';
import { slot, type VideoClient } from '../test/support/clients.js';
import { benchConfig, CLINIC, DOCTOR, withClient } from './fixture.js';
import { ADMIN, addOverdueConsultation, patientOf } from './scale-history.js';

/** Every step measured, in the order of the results table. */
export const STEPS = [
  'ScheduleConsultation',
  'CheckIn',
  'ListWaitingRoom',
  'AdmitPatient',
  'StartConsultation',
  'GenerateToken',
  'GetConsultationStatus',
  'ReportTechnicalIssue',
  'EndConsultation',
  'CancelConsultation',
  'ListConsultationHistory, first page',
  'ListConsultationHistory, ended in the last 30 days',
  'ListConsultationHistory, deep page',
  'ListAuditEntries, first page',
  'ListAuditEntries, deep page',
  'GET /readyz',
  'GET /metrics',
  'Sweeper pass',
  'Reconciler pass',
] as const;
export type StepName = (typeof STEPS)[number];

/** Runs one step's call (timing it, or recording its SQL); answers what the call answered. */
export type Runner = <T>(step: StepName, call: () => Promise<T>) => Promise<T>;

/** The page size of every measured list call (the API's default). */
export const PAGE_SIZE = 20;
/** The visits' patients: PATIENT-0 … PATIENT-49, each with a history in the seeded database. */
const VISIT_PATIENTS = 50;
/** The largest page the API serves: the walks to the deep pages take these. */
const WALK_PAGE_SIZE = 100;

/** A list page reached by walking the list with its page tokens. */
export interface DeepPage {
  readonly token: string;
  /** Rows before it. */
  readonly depth: number;
}

/** The service's sweeper and reconciler, built in this process on one database. */
export interface BackgroundPasses {
  readonly sweeper: Sweeper;
  readonly reconciler: Reconciler;
  close(): Promise<void>;
}

/** One database of the measurement as its callers see it. */
export interface Side {
  readonly name: 'empty' | 'seeded';
  readonly databaseUrl: string;
  /** The service on it (`/readyz`, `/metrics`). */
  readonly baseUrl: string;
  /** A client of that service; each call carries its caller's token (`auth`). */
  readonly client: VideoClient;
  /** The call options of a caller of the bench's clinic: their bearer token. */
  readonly auth: (role: Role, userId: string) => CallOptions;
  /** The filtered history page's slot window, the same on both databases. */
  readonly window: { readonly from: Timestamp; readonly to: Timestamp };
  readonly passes: BackgroundPasses;
  /** Set once the lists were walked (`walkToDeepPages`). */
  deep?: { readonly history: DeepPage; readonly audit: DeepPage };
}

/** Call options carrying `token` as the bearer token. */
export const bearerOptions = (token: string): CallOptions => ({
  headers: { authorization: `Bearer ${token}` },
});

/** The filtered history page's window: slots from 30 days ago to tomorrow. */
export function historyWindow(now = Date.now()): Side['window'] {
  const day = 24 * 60 * 60_000;
  return {
    from: timestampFromDate(new Date(now - 30 * day)),
    to: timestampFromDate(new Date(now + day)),
  };
}

/** Visit n (see the file's comment): ten calls on two new consultations. */
export async function visit(side: Side, n: number, run: Runner): Promise<void> {
  const { client } = side;
  const patientId = patientOf(n % VISIT_PATIENTS);
  const admin = side.auth('clinic_admin', ADMIN);
  const doctor = side.auth('doctor', DOCTOR);
  const patient = side.auth('patient', patientId);
  const schedule = (appointmentId: string, minutesFromNow: number) =>
    run('ScheduleConsultation', () =>
      client.scheduleConsultation(
        { appointmentId, doctorId: DOCTOR, patientId, ...slot(minutesFromNow) },
        admin,
      ),
    );

  const consultationId = idOf(await schedule(`visit-${n}`, 5));
  const request = { consultationId };
  await run('CheckIn', () => client.checkIn(request, patient));
  await run('ListWaitingRoom', () => client.listWaitingRoom({}, doctor));
  await run('AdmitPatient', () => client.admitPatient(request, doctor));
  await run('StartConsultation', () => client.startConsultation(request, doctor));
  await run('GenerateToken', () => client.generateToken(request, doctor));
  await run('GetConsultationStatus', () => client.getConsultationStatus(request, patient));
  await run('ReportTechnicalIssue', () =>
    client.reportTechnicalIssue(
      {
        ...request,
        issueType: TechnicalIssueType.AUDIO,
        description: 'The sound dropped for a few seconds',
        idempotencyKey: `visit-${n}`,
      },
      patient,
    ),
  );
  await run('EndConsultation', () => client.endConsultation(request, doctor));

  const cancelled = idOf(await schedule(`visit-${n}-cancelled`, 24 * 60));
  await run('CancelConsultation', () =>
    client.cancelConsultation({ target: { case: 'consultationId', value: cancelled } }, admin),
  );
}

function idOf(response: { consultation?: { id: string } | undefined }): string {
  const id = response.consultation?.id;
  if (!id) throw new Error('ScheduleConsultation answered no consultation');
  return id;
}

/** A read measured as it is: one call, whose answer is checked and dropped. */
export interface Read {
  readonly name: StepName;
  call(side: Side): Promise<unknown>;
}

/** The reads (see the file's comment), each called as the caller who would make it. */
export const READS: readonly Read[] = [
  {
    name: 'ListConsultationHistory, first page',
    call: (side) =>
      side.client.listConsultationHistory({ pageSize: PAGE_SIZE }, side.auth('doctor', DOCTOR)),
  },
  {
    name: 'ListConsultationHistory, ended in the last 30 days',
    call: (side) =>
      side.client.listConsultationHistory(
        {
          pageSize: PAGE_SIZE,
          statuses: [ConsultationStatus.ENDED],
          scheduledFrom: side.window.from,
          scheduledTo: side.window.to,
        },
        side.auth('doctor', DOCTOR),
      ),
  },
  {
    name: 'ListConsultationHistory, deep page',
    call: (side) =>
      side.client.listConsultationHistory(
        { pageSize: PAGE_SIZE, pageToken: deepOf(side).history.token },
        side.auth('doctor', DOCTOR),
      ),
  },
  {
    name: 'ListAuditEntries, first page',
    call: (side) =>
      side.client.listAuditEntries({ pageSize: PAGE_SIZE }, side.auth('clinic_admin', ADMIN)),
  },
  {
    name: 'ListAuditEntries, deep page',
    call: (side) =>
      side.client.listAuditEntries(
        { pageSize: PAGE_SIZE, pageToken: deepOf(side).audit.token },
        side.auth('clinic_admin', ADMIN),
      ),
  },
  { name: 'GET /readyz', call: (side) => httpGet(side.baseUrl, '/readyz') },
  { name: 'GET /metrics', call: (side) => httpGet(side.baseUrl, '/metrics') },
];

function deepOf(side: Side): NonNullable<Side['deep']> {
  if (!side.deep) throw new Error(`${side.name}: the lists were not walked to their deep pages`);
  return side.deep;
}

/** GET `path` (HTTP/1.1, kept alive), read to the end; anything but 200 fails the run. */
async function httpGet(baseUrl: string, path: string): Promise<string> {
  const response = await fetch(`${baseUrl}${path}`);
  const body = await response.text();
  if (response.status !== 200) throw new Error(`GET ${path}: ${response.status} ${body}`);
  return body;
}

/**
 * One sweeper pass with exactly one consultation to close: it is added first (not timed),
 * and a pass that closes anything else fails the run.
 */
export async function sweeperPass(side: Side, n: number, run: Runner): Promise<void> {
  await addOverdueConsultation(side.databaseUrl, n);
  const closed = await run('Sweeper pass', () => side.passes.sweeper.sweepOnce());
  if (closed.noShows !== 1 || closed.overruns !== 0) {
    throw new Error(`${side.name}: a sweeper pass closed ${JSON.stringify(closed)}, not 1 no-show`);
  }
}

/** One reconciler pass: it claims the consultations in progress (their lease is 0). */
export async function reconcilerPass(side: Side, run: Runner): Promise<void> {
  await run('Reconciler pass', () => side.passes.reconciler.reconcileOnce());
}

/**
 * The service's sweeper and reconciler on `databaseUrl`, with the service's configuration
 * and its own pool, never started: the bench calls their passes.
 */
export async function openBackgroundPasses(databaseUrl: string): Promise<BackgroundPasses> {
  const config = benchConfig(databaseUrl);
  const logger = createLogger('silent');
  const database = await openDatabase(config, logger);
  const { orm } = database;
  const clock = systemClock;
  const providers = createConfiguredProviders(config.providers, clock);
  const sweeper = createSweeper({
    orm,
    providers,
    clock,
    logger,
    rules: config.consultation,
    intervalMs: config.consultation.sweepIntervalMs,
  });
  const reconciler = createReconciler({
    orm,
    providers,
    attendance: createAttendance({ orm, clock, logger }),
    clock,
    logger,
    intervalMs: 0,
  });
  return { sweeper, reconciler, close: () => database.stop() };
}

/**
 * Walks the doctor's history and the clinic's audit trail with their page tokens, pages of
 * 100, to `depth` rows, or on a shorter list to its last full page, and keeps the tokens.
 */
export async function walkToDeepPages(
  side: Side,
  depth: { readonly history: number; readonly audit: number },
): Promise<NonNullable<Side['deep']>> {
  const doctor = side.auth('doctor', DOCTOR);
  const admin = side.auth('clinic_admin', ADMIN);
  const [historyRows, auditRows] = await withClient(side.databaseUrl, async (client) => {
    const count = async (sql: string, params: unknown[]) =>
      Number((await client.query<{ count: string }>(sql, params)).rows[0]?.count ?? 0);
    return [
      await count('select count(*) from consultation where clinic_id = $1 and doctor_id = $2', [
        CLINIC,
        DOCTOR,
      ]),
      await count(
        'select count(*) from audit_entry where clinic_id = $1 or target_clinic_id = $1',
        [CLINIC],
      ),
    ];
  });
  const history = await walk(
    Math.min(depth.history, historyRows - PAGE_SIZE),
    async (pageToken, pageSize) => {
      const page = await side.client.listConsultationHistory({ pageSize, pageToken }, doctor);
      return { rows: page.consultations.length, next: page.nextPageToken };
    },
  );
  const audit = await walk(
    Math.min(depth.audit, auditRows - PAGE_SIZE),
    async (pageToken, pageSize) => {
      const page = await side.client.listAuditEntries({ pageSize, pageToken }, admin);
      return { rows: page.entries.length, next: page.nextPageToken };
    },
  );
  return { history, audit };
}

/** Follows page tokens until `depth` rows lie before the page the last token names. */
async function walk(
  depth: number,
  page: (token: string, size: number) => Promise<{ rows: number; next: string }>,
): Promise<DeepPage> {
  if (depth < 1) throw new Error('a list is too short for a deep page: make more warm-up visits');
  let token = '';
  let skipped = 0;
  while (skipped < depth) {
    const { rows, next } = await page(token, Math.min(WALK_PAGE_SIZE, depth - skipped));
    if (!next) throw new Error(`the list ended after ${skipped + rows} rows`);
    token = next;
    skipped += rows;
  }
  return { token, depth: skipped };
}
