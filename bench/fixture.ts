/**
 * What the measurements share: a database of the bench's own on the PostgreSQL server
 * that DATABASE_URL names, the real service run on it in a Node process of its own
 * (migrated), compiled and started as in production, and
 * consultations seeded with plain SQL so that the service and pgbench address the same
 * rows by ids both can compute: consultation n (1 ≤ n ≤ count) has the id
 * `00000000-0000-4000-8000-<100000000000 + n>`, is in progress since 5 minutes, its
 * doctor already holds a token (so GenerateToken updates nothing, only inserts).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { bundleService } from '../scripts/service-bundle.js';
import { type App, startApp } from '../src/app.js';
import { mintToken } from '../src/auth/jwt.js';
import { type Config, loadConfig } from '../src/config.js';
import type { Role } from '../src/domain/access.js';
import { createLogger } from '../src/logger.js';
import { type ChildServer, REPOSITORY_ROOT, startChildServer } from './child.js';

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

/**
 * The service's configuration in the bench: rate limiting off and the background sweeps
 * made hourly, so that only the calls under test reach the database.
 */
const serviceEnv = (databaseUrl: string, logLevel: string) => ({
  DATABASE_URL: databaseUrl,
  MIGRATE_ON_START: 'true',
  RATE_LIMIT_REQUESTS: '0',
  LOG_LEVEL: logLevel,
  PORT: '0',
  HOST: '127.0.0.1',
  SWEEP_INTERVAL_MS: '3600000',
  RECONCILE_INTERVAL_MS: '3600000',
});

/** The configuration the bench's service runs with (serviceEnv), logging off: for in-process parts. */
export const benchConfig = (databaseUrl: string): Config =>
  loadConfig(serviceEnv(databaseUrl, 'silent'));

/** A bearer token of a user of the bench's clinic (an hour), signed with the configured secret. */
function clinicToken(secret: string, role: Role, userId: string): string {
  return mintToken({ secret, role, userId, clinicId: CLINIC, expiresInSeconds: 3600 });
}

/** A bearer token of the seeded consultations' doctor, signed with the configured secret. */
const doctorToken = (secret: string) => clinicToken(secret, 'doctor', DOCTOR);

/** The patient of consultation n, when seeded with a patient of its own (see seedConsultations). */
export const ownPatient = (n: number) => `${PATIENT}-${ID_BASE + n}`;

export interface Service {
  readonly process: ChildServer;
  readonly baseUrl: string;
  /** A bearer token of the seeded consultations' doctor. */
  readonly doctorToken: string;
  /** A bearer token of a patient of the bench's clinic (an hour), signed like the doctor's. */
  patientToken(userId: string): string;
  /** A bearer token of any user of the bench's clinic (an hour), signed like the doctor's. */
  token(role: Role, userId: string): string;
}

/**
 * How the service is started: as it runs in production (the default), or as `npm start`
 * runs it in development (`BENCH_SERVICE=tsx`: the TypeScript compiled at load by tsx).
 */
const SERVICE_FORM = process.env.BENCH_SERVICE === 'tsx' ? 'tsx' : 'production';

/**
 * The production form: the bundled service, with the Node arguments of `npm run serve`
 * (package.json), which the Docker image's CMD repeats. Read from package.json, so the
 * bench measures what is documented; bundled once per bench process.
 */
function productionCommand(): { nodeArgs: string[]; script: string } {
  const manifest = JSON.parse(readFileSync(join(REPOSITORY_ROOT, 'package.json'), 'utf8')) as {
    scripts: Record<string, string>;
  };
  const [node, ...args] = (manifest.scripts.serve ?? '').split(/\s+/);
  const script = args.pop();
  if (node !== 'node' || !script?.endsWith('.mjs')) {
    throw new Error(`package.json's serve script is not "node [options] <file>.mjs": ${node}`);
  }
  return { nodeArgs: args, script };
}

let bundled: Promise<void> | undefined;
/** `npm run build:service`, once: the production form runs its output. */
function bundleOnce(): Promise<void> {
  bundled ??= bundleService();
  return bundled;
}

/** What the child runs: the compiled service as in production, or `src/main.ts` through tsx. */
export async function serviceCommand(): Promise<{ nodeArgs?: string[]; script: string }> {
  if (SERVICE_FORM === 'tsx') return { script: 'src/main.ts' };
  await bundleOnce();
  return productionCommand();
}

/** Says how the child runs, for the bench's log lines. */
export const serviceFormText = () =>
  SERVICE_FORM === 'tsx'
    ? 'node --import tsx src/main.ts (npm start; BENCH_SERVICE=tsx)'
    : `the compiled service as \`npm run serve\` runs it`;

/**
 * The service in a Node process of its own, from the repository root, as it runs in
 * production (`serviceCommand`), configured by its environment alone. LOG_LEVEL is `info` because its `listening` log line (JSON on
 * stdout) tells the port; that also writes a log line per call, which the bench drains
 * and discards. The token is minted here with the configuration's secret, the default
 * development secret the child uses too (AUTH_JWT_SECRET is not passed). `extraEnv` adds
 * to that environment (the Kafka settings of the event measurements, see events.ts).
 */
export async function startService(
  databaseUrl: string,
  extraEnv: Readonly<Record<string, string>> = {},
): Promise<Service> {
  const env = { ...serviceEnv(databaseUrl, 'info'), ...extraEnv };
  const config = loadConfig(env);
  const child = await startChildServer({
    ...(await serviceCommand()),
    env,
    port: (line) =>
      line.msg === 'listening' && typeof line.port === 'number' ? line.port : undefined,
  });
  const secret = config.auth.jwtSecret;
  return {
    process: child,
    baseUrl: child.url,
    doctorToken: doctorToken(secret),
    patientToken: (userId) => clinicToken(secret, 'patient', userId),
    token: (role, userId) => clinicToken(secret, role, userId),
  };
}

export interface InProcessService {
  readonly app: App;
  readonly baseUrl: string;
  readonly doctorToken: string;
  /** A bearer token of any user of the bench's clinic (an hour), signed like the doctor's. */
  token(role: Role, userId: string): string;
}

/**
 * The service started in the bench's own process (`startApp`, logging off), with the
 * same configuration: it migrates the database, and lets the bench watch the SQL one
 * call sends at the pg driver (see write-path.ts). Stop it before starting the child.
 */
export async function startServiceInProcess(databaseUrl: string): Promise<InProcessService> {
  const config = benchConfig(databaseUrl);
  const app = await startApp(config, createLogger(config.logLevel));
  const secret = config.auth.jwtSecret;
  return {
    app,
    baseUrl: `http://127.0.0.1:${app.port}`,
    doctorToken: doctorToken(secret),
    token: (role, userId) => clinicToken(secret, role, userId),
  };
}

/**
 * `count` consultations in progress, numbered from `first` (default 1), each with its
 * doctor (holding a token) and patient. The patient is PATIENT for all of them, or with
 * `ownPatients` one of its own for each (`ownPatient(n)`): the watch measurement's
 * watchers are distinct callers, as patients watching their own consultation are.
 */
export async function seedConsultations(
  databaseUrl: string,
  count: number,
  options: { readonly first?: number; readonly ownPatients?: boolean } = {},
): Promise<void> {
  const id = `('00000000-0000-4000-8000-' || (${ID_BASE} + g))::uuid`;
  const first = options.first ?? 1;
  const patient = options.ownPatients ? `$3::text || '-' || (${ID_BASE} + g)` : '$3::text';
  await withClient(databaseUrl, async (client) => {
    await client.query(
      `insert into consultation (id, clinic_id, appointment_id, doctor_id, patient_id,
         scheduled_start, scheduled_end, status, provider, provider_session_id, started_at,
         created_at, updated_at)
       select ${id}, $1, 'bench-apt-' || (${ID_BASE} + g), $2, ${patient},
         now() - interval '5 minutes', now() + interval '55 minutes', 'in_progress',
         'jitsi', 'bench-room-' || g, now() - interval '5 minutes', now(), now()
       from generate_series($4::int, $5::int) as g`,
      [CLINIC, DOCTOR, PATIENT, first, first + count - 1],
    );
    await client.query(
      `insert into participant (id, consultation_id, clinic_id, user_id, role, admitted_at,
         first_token_at)
       select gen_random_uuid(), ${id}, $1, p.user_id, p.role, now(), now()
       from generate_series($4::int, $5::int) as g,
         lateral (values ($2, 'doctor'), (${patient}, 'patient')) as p(user_id, role)`,
      [CLINIC, DOCTOR, PATIENT, first, first + count - 1],
    );
    await client.query('analyze');
  });
}

/** One connection to `url` for the length of `work`. */
export async function withClient<T>(
  url: string,
  work: (client: pg.Client) => Promise<T>,
): Promise<T> {
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
