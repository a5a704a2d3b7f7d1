/**
 * What the measurements share: a database of the bench's own on the PostgreSQL server
 * that DATABASE_URL names, the real service started in-process on it (migrated), and
 * consultations seeded with plain SQL so that the service and pgbench address the same
 * rows by ids both can compute: consultation n (1 ≤ n ≤ count) has the id
 * `00000000-0000-4000-8000-<100000000000 + n>`, is in progress since 5 minutes, its
 * doctor already holds a token (so GenerateToken updates nothing, only inserts).
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { type App, startApp } from '../src/app.js';
import { mintToken } from '../src/auth/jwt.js';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';

export const CLINIC = 'bench-clinic';
export const DOCTOR = 'bench-doctor';
export const PATIENT = 'bench-patient';
/** Added to n, so that the last group of the uuid is always 12 digits (see pgbench). */
const ID_BASE = 100_000_000_000;

export const consultationId = (n: number) => `00000000-0000-4000-8000-${ID_BASE + n}`;

export interface BenchDatabase {
  readonly url: string;
  drop(): Promise<void>;
}

/** A fresh database on the server `serverUrl` names; `drop()` removes it. */
export async function createBenchDatabase(serverUrl: string): Promise<BenchDatabase> {
  const name = `video_bench_${randomBytes(4).toString('hex')}`;
  await admin(serverUrl, `create database ${name}`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: () => admin(serverUrl, `drop database if exists ${name} with (force)`),
  };
}

export interface Service {
  readonly app: App;
  readonly baseUrl: string;
  /** A bearer token of the seeded consultations' doctor. */
  readonly doctorToken: string;
}

/**
 * The service as `main.ts` runs it, with rate limiting and logging off and the
 * background sweeps made hourly, so that only the calls under test reach the database.
 */
export async function startService(databaseUrl: string): Promise<Service> {
  const config = loadConfig({
    DATABASE_URL: databaseUrl,
    MIGRATE_ON_START: 'true',
    RATE_LIMIT_REQUESTS: '0',
    LOG_LEVEL: 'silent',
    PORT: '0',
    HOST: '127.0.0.1',
    SWEEP_INTERVAL_MS: '3600000',
    RECONCILE_INTERVAL_MS: '3600000',
  });
  const app = await startApp(config, createLogger(config.logLevel));
  const doctorToken = mintToken({
    secret: config.auth.jwtSecret,
    role: 'doctor',
    userId: DOCTOR,
    clinicId: CLINIC,
    expiresInSeconds: 3600,
  });
  return { app, baseUrl: `http://127.0.0.1:${app.port}`, doctorToken };
}

/** `count` consultations in progress, each with its doctor (holding a token) and patient. */
export async function seedConsultations(databaseUrl: string, count: number): Promise<void> {
  const id = `('00000000-0000-4000-8000-' || (${ID_BASE} + g))::uuid`;
  await withClient(databaseUrl, async (client) => {
    await client.query(
      `insert into consultation (id, clinic_id, appointment_id, doctor_id, patient_id,
         scheduled_start, scheduled_end, status, provider, provider_session_id, started_at,
         created_at, updated_at)
       select ${id}, $1, 'bench-apt-' || (${ID_BASE} + g), $2, $3,
         now() - interval '5 minutes', now() + interval '55 minutes', 'in_progress',
         'jitsi', 'bench-room-' || g, now() - interval '5 minutes', now(), now()
       from generate_series(1, $4::int) as g`,
      [CLINIC, DOCTOR, PATIENT, count],
    );
    await client.query(
      `insert into participant (id, consultation_id, clinic_id, user_id, role, admitted_at,
         first_token_at)
       select gen_random_uuid(), ${id}, $1, p.user_id, p.role, now(), now()
       from generate_series(1, $2::int) as g,
         (values ($3, 'doctor'), ($4, 'patient')) as p(user_id, role)`,
      [CLINIC, count, DOCTOR, PATIENT],
    );
    await client.query('analyze');
  });
}

async function withClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

const admin = (serverUrl: string, sql: string) =>
  withClient(serverUrl, async (client) => void (await client.query(sql)));
