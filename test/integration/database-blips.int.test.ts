import { setTimeout as delay } from 'node:timers/promises';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { Health, HealthCheckResponse_ServingStatus } from '../../gen/grpc/health/v1/health_pb.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { appointmentId, slot, videoClient } from '../support/clients.js';
import {
  createTestDatabase,
  serverForSeveralCopies,
  type TestDatabase,
} from '../support/database.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';

/**
 * What a database blip does to the service under load: PostgreSQL terminating every one
 * of the service's sessions (a failover, an operator's pg_terminate_backend), and
 * PostgreSQL going away for a few seconds (a restart, seen through a TCP proxy that the
 * test cuts). Calls during the blip fail fast with UNAVAILABLE, which callers retry;
 * never INTERNAL, never a hang. The service serves again within seconds after PostgreSQL
 * does, without a restart, and its readiness says what is going on.
 *
 * Needs a PostgreSQL server (DATABASE_URL): terminating sessions and cutting a socket
 * mean nothing to the embedded engine.
 */

/** A caller's own deadline: a call still running after it counts as a hang. */
const CALL_DEADLINE_MS = 5_000;
const ACQUIRE_TIMEOUT_MS = 1_000;
const READINESS_GRACE_MS = 1_500;
const POOL_SIZE = 10;
/** How long PostgreSQL stays away in the restart test. */
const OUTAGE_MS = 3_000;

interface CallRecord {
  readonly method: 'schedule' | 'read' | 'cancel';
  /** performance.now() when the call was sent. */
  readonly started: number;
  readonly ms: number;
  readonly code: Code | 'ok';
}

/**
 * `callers` loops, each scheduling a consultation, reading it and cancelling it, over and
 * over, on a Connect client of its own, until stopped. Every call is recorded.
 */
function startLoad(t: TestApp, callers: number) {
  const records: CallRecord[] = [];
  const waiters = new Set<() => void>();
  let stopping = false;

  async function call(method: CallRecord['method'], send: () => Promise<unknown>) {
    const started = performance.now();
    let code: CallRecord['code'] = 'ok';
    try {
      await send();
    } catch (error) {
      code = ConnectError.from(error).code;
    }
    records.push({ method, started, ms: performance.now() - started, code });
    for (const wake of waiters) wake();
    return code === 'ok';
  }

  const loops = Array.from({ length: callers }, async (_, i) => {
    const client = videoClient(t.baseUrl, t.token('service', `svc-${i}`));
    const options = { timeoutMs: CALL_DEADLINE_MS };
    while (!stopping) {
      let id = '';
      const scheduled = await call('schedule', async () => {
        const res = await client.scheduleConsultation(
          {
            appointmentId: appointmentId(`blip-${i}`),
            doctorId: `doc-${i}`,
            patientId: `pat-${i}`,
            ...slot(60),
          },
          options,
        );
        id = res.consultation?.id ?? '';
      });
      if (scheduled) {
        await call('read', () => client.getConsultationStatus({ consultationId: id }, options));
        await call('cancel', () =>
          client.cancelConsultation({ target: { case: 'consultationId', value: id } }, options),
        );
      } else {
        // What a retrying client does after UNAVAILABLE: a short pause before the next try.
        await delay(20);
      }
    }
  });

  return {
    records,
    /** Resolves true as soon as `condition` holds after some call, false after `withinMs`. */
    until(condition: (records: readonly CallRecord[]) => boolean, withinMs: number) {
      return new Promise<boolean>((resolve) => {
        const finish = (met: boolean) => {
          clearTimeout(timer);
          waiters.delete(check);
          resolve(met);
        };
        const check = () => {
          if (condition(records)) finish(true);
        };
        const timer = setTimeout(() => finish(false), withinMs);
        waiters.add(check);
        check();
      });
    },
    async stop() {
      stopping = true;
      await Promise.all(loops);
    },
  };
}

async function admin<T extends pg.QueryResultRow>(sql: string, params: unknown[] = []) {
  const client = new pg.Client({ connectionString: process.env.DATABASE_URL });
  await client.connect();
  try {
    return (await client.query<T>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

/** Terminates every session on the database but the one asking: what a failover does. */
async function terminateBackends(database: string): Promise<number> {
  const rows = await admin<{ n: number }>(
    `select count(*)::int as n from (select pg_terminate_backend(pid) from pg_stat_activity
      where datname = $1 and pid <> pg_backend_pid()) terminated`,
    [database],
  );
  return rows[0]?.n ?? 0;
}

/**
 * The service's pooled sessions on its database, as PostgreSQL counts them (not its one
 * LISTEN connection, which is outside the pool).
 */
async function backends(database: string): Promise<number> {
  const rows = await admin<{ n: number }>(
    `select count(*)::int as n from pg_stat_activity
      where datname = $1 and pid <> pg_backend_pid() and application_name <> 'video-service-listen'`,
    [database],
  );
  return rows[0]?.n ?? 0;
}

/** GET /readyz with a deadline of its own: the status, or 'hung'. */
async function readiness(
  t: TestApp,
): Promise<{ status: number | 'hung'; ms: number; body: unknown }> {
  const started = performance.now();
  try {
    const res = await fetch(`${t.baseUrl}/readyz`, {
      signal: AbortSignal.timeout(CALL_DEADLINE_MS),
    });
    return { status: res.status, ms: performance.now() - started, body: await res.json() };
  } catch {
    return { status: 'hung', ms: performance.now() - started, body: undefined };
  }
}

async function grpcHealth(t: TestApp) {
  const health = createClient(Health, createGrpcTransport({ baseUrl: t.baseUrl }));
  const started = performance.now();
  const status = await health.check({ service: '' }, { timeoutMs: CALL_DEADLINE_MS }).then(
    (res) => HealthCheckResponse_ServingStatus[res.status],
    (error: unknown) => `error ${Code[ConnectError.from(error).code]}`,
  );
  return { status, ms: performance.now() - started };
}

/** Polls `probe` every 100 ms until `wanted` holds or `withinMs` passes; answers the time. */
async function awaitProbe<T>(
  probe: () => Promise<T>,
  wanted: (value: T) => boolean,
  withinMs: number,
) {
  const started = performance.now();
  const seen: T[] = [];
  while (performance.now() - started < withinMs) {
    const value = await probe();
    seen.push(value);
    if (wanted(value)) return { at: performance.now(), seen };
    await delay(100);
  }
  return { at: undefined, seen };
}

const codeName = (code: CallRecord['code']) => (code === 'ok' ? 'OK' : Code[code]);
const counts = (records: readonly CallRecord[]) =>
  records.reduce<Record<string, number>>((acc, r) => {
    acc[codeName(r.code)] = (acc[codeName(r.code)] ?? 0) + 1;
    return acc;
  }, {});
const ms = (records: readonly CallRecord[]) => {
  const sorted = records.map((r) => r.ms).sort((a, b) => a - b);
  const at = (q: number) =>
    Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0);
  return { calls: sorted.length, p50: at(0.5), p99: at(0.99), max: Math.round(sorted.at(-1) ?? 0) };
};
const between = (records: readonly CallRecord[], from: number, to = Number.POSITIVE_INFINITY) =>
  records.filter((r) => r.started >= from && r.started < to);

/** Stops the app within `withinMs`, or says it could not (a wedged pool never ends). */
async function stopWithin(t: TestApp, withinMs: number): Promise<number | 'hung'> {
  const started = performance.now();
  const stopped = await Promise.race([t.stop().then(() => true), delay(withinMs, false)]);
  return stopped ? Math.round(performance.now() - started) : 'hung';
}

describe.runIf(serverForSeveralCopies)('a database blip under load', () => {
  let cleanup: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const step of cleanup.reverse()) await step().catch(() => undefined);
    cleanup = [];
  });

  it('terminating every backend twice: UNAVAILABLE or OK, never INTERNAL or a hang; serves again at once', async () => {
    const database: TestDatabase = await createTestDatabase();
    cleanup.push(() => database.drop());
    const dbName = new URL(database.env.DATABASE_URL!).pathname.slice(1);
    const t = await startTestApp(
      {
        DATABASE_POOL_SIZE: String(POOL_SIZE),
        DATABASE_ACQUIRE_TIMEOUT_MS: String(ACQUIRE_TIMEOUT_MS),
        READINESS_DATABASE_GRACE_MS: String(READINESS_GRACE_MS),
      },
      database,
    );
    let stopped = false;
    cleanup.push(async () => {
      if (!stopped) await stopWithin(t, 10_000);
    });
    const load = startLoad(t, 16);

    // Warm: every caller through at least one whole round.
    const warm = await load.until((r) => r.filter((c) => c.code === 'ok').length >= 16 * 3, 20_000);
    expect(warm, JSON.stringify(counts(load.records))).toBe(true);

    const blips: number[] = [];
    const recovered: (number | undefined)[] = [];
    for (let i = 0; i < 2; i++) {
      const at = performance.now();
      blips.push(at);
      const terminated = await terminateBackends(dbName);
      console.log(`blip ${i + 1}: ${terminated} backends terminated`);
      const ok = await load.until(
        (r) => r.some((c) => c.started > at && c.code === 'ok'),
        CALL_DEADLINE_MS * 2,
      );
      recovered.push(ok ? performance.now() - at : undefined);
    }
    const last = blips.at(-1)!;
    // Enough calls after the second blip's first two seconds to show the service is back.
    const backAt = last + 2_000;
    await load.until((r) => between(r, backAt).length >= 16 * 3, 20_000);
    // Under this load the pool uses all it may (DATABASE_POOL_SIZE, 10): every connection
    // that died in the blips was given back, none is still held by a call long gone.
    const fullPool = await awaitProbe(
      () => backends(dbName),
      (n) => n >= POOL_SIZE,
      5_000,
    );
    const ready = await readiness(t);
    const health = await grpcHealth(t);
    await load.stop();

    const { records } = load;
    const during = blips.flatMap((b) => between(records, b - 500, b + 2_000));
    const after = between(records, backAt);
    console.log(
      JSON.stringify(
        {
          calls: records.length,
          codes: counts(records),
          recoveredMs: recovered.map((r) => (r === undefined ? 'never' : Math.round(r))),
          duringBlips: { codes: counts(during), ms: ms(during) },
          afterBlips: { codes: counts(after), ms: ms(after) },
          backendsUnderLoad: Math.max(...fullPool.seen),
          readyz: { status: ready.status, ms: Math.round(ready.ms) },
          grpcHealth: { status: health.status, ms: Math.round(health.ms) },
        },
        null,
        1,
      ),
    );

    expect(recovered.every((r) => r !== undefined && r < 2_000)).toBe(true);
    // Only OK and UNAVAILABLE, ever: no INTERNAL, and no DEADLINE_EXCEEDED (a hang).
    expect(Object.keys(counts(records)).sort()).toEqual(
      Object.keys(counts(records))
        .filter((c) => c === 'OK' || c === 'Unavailable')
        .sort(),
    );
    expect(ms(records).max).toBeLessThan(3_000);
    expect(after.length).toBeGreaterThanOrEqual(16 * 3);
    expect(after.every((r) => r.code === 'ok')).toBe(true);
    expect(Math.max(...fullPool.seen)).toBe(POOL_SIZE);
    expect(ready.status).toBe(200);
    expect(ready.ms).toBeLessThan(2_000);
    expect(health.status).toBe('SERVING');

    // SIGTERM's path: the service stops, every connection returned.
    const stopMs = await stopWithin(t, 10_000);
    stopped = true;
    console.log(`stopped in ${stopMs} ms`);
    expect(stopMs).not.toBe('hung');
  }, 90_000);

  /** The service on a database of its own, reached through a TCP proxy the test can cut. */
  async function startBehindProxy() {
    const database: TestDatabase = await createTestDatabase();
    cleanup.push(() => database.drop());
    const direct = new URL(database.env.DATABASE_URL!);
    const proxy: TcpProxy = await startTcpProxy({
      host: direct.hostname,
      port: Number(direct.port || 5432),
    });
    cleanup.push(() => proxy.close());
    const proxied = new URL(direct);
    proxied.port = String(proxy.port);
    const t = await startTestApp(
      {
        DATABASE_URL: proxied.toString(),
        MIGRATE_ON_START: 'true',
        DATABASE_ACQUIRE_TIMEOUT_MS: String(ACQUIRE_TIMEOUT_MS),
        READINESS_DATABASE_GRACE_MS: String(READINESS_GRACE_MS),
      },
      database,
    );
    let stopped = false;
    cleanup.push(async () => {
      if (!stopped) await stopWithin(t, 10_000);
    });
    return {
      t,
      proxy,
      async stop() {
        stopped = true;
        return stopWithin(t, 10_000);
      },
    };
  }

  it('PostgreSQL gone for seconds: fails fast, not ready after the grace, back without a restart', async () => {
    const { t, proxy, stop } = await startBehindProxy();
    const load = startLoad(t, 8);
    const warm = await load.until((r) => r.filter((c) => c.code === 'ok').length >= 8 * 3, 20_000);
    expect(warm, JSON.stringify(counts(load.records))).toBe(true);
    expect((await readiness(t)).status).toBe(200);

    const down = performance.now();
    await proxy.stop();
    // Not ready once the database has been out of reach for longer than the grace; every
    // probe answered, none hung.
    const notReady = await awaitProbe(
      () => readiness(t),
      (r) => r.status === 503,
      READINESS_GRACE_MS + 5_000,
    );
    const healthDown = await grpcHealth(t);
    // A restart takes a few seconds: the outage lasts at least OUTAGE_MS.
    await delay(Math.max(0, down + OUTAGE_MS - performance.now()));
    const up = performance.now();
    await proxy.start();
    const readyAgain = await awaitProbe(
      () => readiness(t),
      (r) => r.status === 200,
      10_000,
    );
    const backAt = up + 2_000;
    await load.until((r) => between(r, backAt).length >= 8 * 3, 20_000);
    await load.stop();

    const { records } = load;
    // Started well inside the outage (a call started just before the restart may
    // well get the new connection).
    const outage = between(records, down + 500, up - 250);
    const after = between(records, backAt);
    const probes = [...notReady.seen, ...readyAgain.seen];
    console.log(
      JSON.stringify(
        {
          calls: records.length,
          codes: counts(records),
          outageMs: Math.round(up - down),
          duringOutage: { codes: counts(outage), ms: ms(outage) },
          afterOutage: { codes: counts(after), ms: ms(after) },
          notReadyAfterMs: notReady.at && Math.round(notReady.at - down),
          readyAgainAfterMs: readyAgain.at && Math.round(readyAgain.at - up),
          readyzProbes: probes.length,
          slowestReadyzMs: Math.round(Math.max(...probes.map((p) => p.ms))),
          notReadyBody: notReady.seen.at(-1)?.body,
          grpcHealthDuringOutage: healthDown,
        },
        null,
        1,
      ),
    );

    expect(notReady.at).toBeDefined();
    // Ready through the grace (a blip is not an outage), not ready soon after it.
    expect(notReady.at! - down).toBeGreaterThanOrEqual(READINESS_GRACE_MS - 100);
    expect(notReady.at! - down).toBeLessThan(READINESS_GRACE_MS + 3_000);
    expect(probes.every((p) => p.status !== 'hung' && p.ms < 2_500)).toBe(true);
    expect(healthDown.status).toBe('NOT_SERVING');
    expect(healthDown.ms).toBeLessThan(2_500);
    // During the outage: UNAVAILABLE, and fast.
    expect(outage.length).toBeGreaterThan(0);
    expect(outage.every((r) => r.code === Code.Unavailable)).toBe(true);
    expect(ms(outage).max).toBeLessThan(ACQUIRE_TIMEOUT_MS + 1_000);
    // Never anything but OK and UNAVAILABLE.
    expect(records.every((r) => r.code === 'ok' || r.code === Code.Unavailable)).toBe(true);
    // Back within seconds, without a restart.
    expect(readyAgain.at).toBeDefined();
    expect(readyAgain.at! - up).toBeLessThan(3_000);
    expect(after.length).toBeGreaterThanOrEqual(8 * 3);
    expect(after.every((r) => r.code === 'ok')).toBe(true);

    expect(await stop()).not.toBe('hung');
  }, 90_000);

  it('a caller’s deadline bounds its call while the database does not answer (a partition)', async () => {
    const { t, proxy, stop } = await startBehindProxy();
    const client = videoClient(t.baseUrl, t.token('service', 'svc'));
    const schedule = () =>
      client.scheduleConsultation({
        appointmentId: appointmentId('partition'),
        doctorId: 'doc-p',
        patientId: 'pat-p',
        ...slot(60),
      });
    const { consultation } = await schedule();

    proxy.freeze();
    // Raw Connect requests, so that what answers is the server, not the client's own timer.
    const deadlineMs = 800;
    const raw = (id: string) => {
      const started = performance.now();
      return fetch(`${t.baseUrl}/video.v1.VideoService/GetConsultationStatus`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'connect-protocol-version': '1',
          'connect-timeout-ms': String(deadlineMs),
          authorization: `Bearer ${t.token('service', 'svc')}`,
        },
        body: JSON.stringify({ consultationId: id }),
        signal: AbortSignal.timeout(CALL_DEADLINE_MS),
      }).then(
        async (res) => ({
          status: res.status,
          code: ((await res.json()) as { code?: string }).code,
          ms: performance.now() - started,
        }),
        () => ({ status: 0, code: 'hung', ms: performance.now() - started }),
      );
    };
    const answers = await Promise.all(Array.from({ length: 12 }, () => raw(consultation!.id)));
    const frozenReadiness = await readiness(t);
    proxy.thaw();
    // Once the network heals, the abandoned work finishes and its connections come back.
    const healed = await awaitProbe(
      () =>
        schedule().then(
          () => true,
          () => false,
        ),
      (ok) => ok,
      10_000,
    );
    console.log(
      JSON.stringify({
        deadlineMs,
        answers: answers.map((a) => `${a.code} ${Math.round(a.ms)}ms`),
        readyzWhileFrozen: { status: frozenReadiness.status, ms: Math.round(frozenReadiness.ms) },
        servesAgain: healed.at !== undefined,
      }),
    );

    expect(answers.every((a) => a.code === 'deadline_exceeded')).toBe(true);
    expect(Math.max(...answers.map((a) => a.ms))).toBeLessThan(deadlineMs + 1_200);
    expect(frozenReadiness.status).not.toBe('hung');
    expect(frozenReadiness.ms).toBeLessThan(ACQUIRE_TIMEOUT_MS + 1_000);
    expect(healed.at).toBeDefined();
    expect(await stop()).not.toBe('hung');
  }, 60_000);
});
