/**
 * The floor: what the two measured calls must do at the least, with nothing of the
 * service around it. A connect-node handler on `http2.createServer`, as bare-server.ts,
 * that does the database work the service's guarantees require, written directly on the
 * pg driver (the same pool size as the service), and answers a fixed message:
 *
 * - GetConsultationStatus: the service's own statement (consultation-read.ts: the row,
 *   its participants, and the read's audit entry, in one statement and one commit), for
 *   the bench's doctor; answers BARE_RESPONSE, as the bare handler does. With
 *   `FLOOR_AUDIT=grouped`, the experiment of a group commit instead: the row and its
 *   participants in one statement, then the read's audit entry handed to a batcher that
 *   inserts every entry waiting in one multi-row INSERT (one commit, one WAL flush) while
 *   the previous batch's is in flight; each call answers once its entry is committed.
 * - GenerateToken: the service's two round trips: the consultation with its participants,
 *   then one statement that checks its version and inserts the audit entry and the
 *   outbox event (token-record.ts), with the Jitsi token signed between them by the
 *   service's own provider.
 *
 * No authentication, no interceptors, no ORM, no view: the difference between this and
 * the bare handler is the database's share of a call, which no code of the service can
 * remove; between this and the service, the service's own. Configured by FLOOR_DATABASE_URL,
 * BARE_RESPONSE, FLOOR_CLINIC and FLOOR_DOCTOR; prints `{"port":N}` and exits on SIGTERM
 * (serve-for-bench.ts).
 */
import { randomUUID } from 'node:crypto';
import { fromJson, type JsonValue } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError, type ConnectRouter } from '@connectrpc/connect';
import pg from 'pg';
import { ParticipantRole, Provider } from '../gen/video/v1/consultation_pb.js';
import {
  GetConsultationStatusResponseSchema,
  VideoService,
} from '../gen/video/v1/video_service_pb.js';
import { loadConfig } from '../src/config.js';
import { createJitsiProvider } from '../src/providers/jitsi-provider.js';
import { AUDIT_INSERT, auditRow } from '../src/video/audit.js';
import { PARTICIPANTS_OF_C, readAuditedSql } from '../src/video/consultation-read.js';
import { AT_VERSION, recordTokenSql } from '../src/video/token-record.js';
import { serveForBench } from './serve-for-bench.js';

const env = (name: string) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const databaseUrl = env('FLOOR_DATABASE_URL');
const clinicId = env('FLOOR_CLINIC');
const doctorId = env('FLOOR_DOCTOR');
const response = fromJson(
  GetConsultationStatusResponseSchema,
  JSON.parse(env('BARE_RESPONSE')) as JsonValue,
);
const config = loadConfig({ DATABASE_URL: databaseUrl });
const pool = new pg.Pool({ connectionString: databaseUrl, max: config.database.poolSize });
const jitsi = createJitsiProvider(config.providers.jitsi);
const principal = { role: 'doctor', userId: doctorId, clinicId } as const;

/** MikroORM's `?` placeholders as pg's `$n`. */
const numbered = (sql: string) => {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
};

const READ = numbered(readAuditedSql('and doctor_id = ?'));

/** The consultation with its participants, in the clinic (READ_ONLY: and the doctor's). */
const LOAD_SQL = `select c.*, ${PARTICIPANTS_OF_C} as participants from consultation c
                   where c.id = ? and c.clinic_id = ?`;
const LOAD = numbered(LOAD_SQL);
const READ_ONLY = numbered(`${LOAD_SQL} and c.doctor_id = ?`);

const RECORD = numbered(recordTokenSql(AT_VERSION));

const audit = (action: 'consultation.read' | 'consultation.join', consultationId: string) =>
  AUDIT_INSERT.params(
    auditRow(
      { principal },
      { action, resourceType: 'consultation', resourceId: consultationId, outcome: 'allowed' },
      new Date(),
    ),
  );

/**
 * Group commit: `commit(params)` resolves once an audit entry with those values is
 * committed. Entries that arrive while a batch is being inserted wait for the next one.
 */
function groupCommit() {
  let waiting: { params: unknown[]; done: (error?: unknown) => void }[] = [];
  let inserting = false;
  async function insertWaiting() {
    inserting = true;
    while (waiting.length > 0) {
      const batch = waiting;
      waiting = [];
      const rows = batch.map(() => `(${AUDIT_INSERT.values})`).join(', ');
      try {
        await pool.query(
          numbered(`insert into audit_entry (${AUDIT_INSERT.columns}) values ${rows}`),
          batch.flatMap((entry) => entry.params),
        );
        for (const entry of batch) entry.done();
      } catch (error) {
        for (const entry of batch) entry.done(error);
      }
    }
    inserting = false;
  }
  return (params: unknown[]) =>
    new Promise<void>((resolve, reject) => {
      waiting.push({ params, done: (error) => (error ? reject(error) : resolve()) });
      if (!inserting) void insertWaiting();
    });
}
const grouped = process.env.FLOOR_AUDIT === 'grouped' ? groupCommit() : undefined;

interface Loaded {
  id: string;
  version: number;
  appointment_id: string;
  provider_session_id: string;
  scheduled_end: Date;
  participants: { id: string; role: string }[];
}

const routes = (router: ConnectRouter) =>
  router.service(VideoService, {
    async getConsultationStatus({ consultationId }) {
      if (grouped) {
        const { rows } = await pool.query(READ_ONLY, [consultationId, clinicId, doctorId]);
        if (rows.length === 0) throw new ConnectError('consultation not found', Code.NotFound);
        await grouped(audit('consultation.read', consultationId));
        return response;
      }
      const { rows } = await pool.query(READ, [
        consultationId,
        clinicId,
        doctorId,
        ...audit('consultation.read', consultationId),
      ]);
      if (rows.length === 0) throw new ConnectError('consultation not found', Code.NotFound);
      return response;
    },

    async generateToken({ consultationId }) {
      const { rows } = await pool.query<Loaded>(LOAD, [consultationId, clinicId]);
      const [c] = rows;
      const doctor = c?.participants.find((p) => p.role === 'doctor');
      if (!c || !doctor) throw new ConnectError('consultation not found', Code.NotFound);
      const credentials = await jitsi.issueToken({
        sessionId: c.provider_session_id,
        participantId: doctor.id,
        role: 'doctor',
        expiresAt: new Date(c.scheduled_end),
      });
      const now = new Date();
      const payload = {
        consultationId,
        appointmentId: c.appointment_id,
        clinicId,
        userId: doctorId,
        userRole: 'PARTICIPANT_ROLE_DOCTOR',
        provider: 'PROVIDER_JITSI',
        expiresAt: credentials.expiresAt.toISOString(),
      };
      const recorded = await pool.query<{ written: number }>(RECORD, [
        consultationId,
        c.version,
        now,
        doctor.id,
        ...audit('consultation.join', consultationId),
        randomUUID(),
        'video.token.generated',
        consultationId,
        consultationId,
        clinicId,
        JSON.stringify(payload),
        now,
        // No trace context: the floor is never traced.
        null,
      ]);
      if (recorded.rows[0]?.written !== 1) throw new ConnectError('changed', Code.Aborted);
      return {
        token: credentials.token,
        joinUrl: credentials.joinUrl,
        provider: Provider.JITSI,
        providerSessionId: c.provider_session_id,
        expiresAt: timestampFromDate(credentials.expiresAt),
        role: ParticipantRole.DOCTOR,
      };
    },
  });

await serveForBench(routes, () => pool.end());
