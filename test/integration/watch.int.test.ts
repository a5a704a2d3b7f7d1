import { Code, ConnectError } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConsultationStatus } from '../../gen/video/v1/consultation_pb.js';
import { mintToken } from '../../src/auth/jwt.js';
import { DEVELOPMENT_JWT_SECRET } from '../../src/config.js';
import { startTestApp, type TestApp } from '../support/app.js';
import {
  appointmentId,
  type Protocol,
  slot,
  type VideoClient,
  videoClient,
} from '../support/clients.js';
import { createTestDatabase, serverForSeveralCopies } from '../support/database.js';
import { startTcpProxy } from '../support/tcp-proxy.js';

/**
 * WatchConsultation through the running server: the current view, then one after each
 * committed change, ending after the final state; the access rules and caps; the change
 * made by another copy of the service (PostgreSQL only), through a lost LISTEN connection.
 */
let t: TestApp;
const as = (app: TestApp, role: Parameters<TestApp['token']>[0], user: string, clinic?: string) =>
  videoClient(app.baseUrl, app.token(role, user, clinic));

beforeAll(async () => {
  t = await startTestApp({ WATCH_MAX_STREAMS_PER_CALLER: '2' });
});
afterAll(async () => {
  await t?.stop();
});

async function schedule(app: TestApp, patient: string) {
  const { consultation } = await as(app, 'service', 'appointments').scheduleConsultation({
    appointmentId: appointmentId('watch'),
    doctorId: 'doc-w',
    patientId: patient,
    ...slot(5),
  });
  return consultation!.id;
}

/** Reads a stream in the background: every view, and how it ended. */
function watch(client: VideoClient, consultationId: string, signal?: AbortSignal) {
  const views: { status: ConsultationStatus; version: number }[] = [];
  let seen: () => void = () => {};
  const ended = (async () => {
    try {
      for await (const { consultation } of client.watchConsultation(
        { consultationId },
        { signal },
      )) {
        views.push({ status: consultation!.status, version: consultation!.version });
        seen();
      }
      return 'ended' as const;
    } catch (error) {
      return ConnectError.from(error).code;
    }
  })();
  /** Resolves once `count` views have arrived, or the stream ended, or after `withinMs`. */
  const until = async (count: number, withinMs = 10_000) => {
    const late = new Promise<'late'>((resolve) => setTimeout(() => resolve('late'), withinMs));
    while (views.length < count) {
      const next = new Promise<void>((resolve) => {
        seen = resolve;
      });
      const done = await Promise.race([next.then(() => false), ended.then(() => true), late]);
      if (done) break;
    }
    return views;
  };
  return { views, ended, until };
}

describe('WatchConsultation', () => {
  for (const protocol of ['connect-json', 'grpc', 'grpc-web'] as Protocol[]) {
    it(`sends the view, then each change in version order, and ends after the final state (${protocol})`, async () => {
      const id = await schedule(t, `pat-w-${protocol}`);
      const patient = videoClient(t.baseUrl, t.token('patient', `pat-w-${protocol}`), protocol);
      const doctor = as(t, 'doctor', 'doc-w');
      const stream = watch(patient, id);
      await stream.until(1);
      await patient.checkIn({ consultationId: id });
      await stream.until(2);
      await doctor.admitPatient({ consultationId: id });
      await stream.until(3);
      await doctor.startConsultation({ consultationId: id });
      await stream.until(4);
      await doctor.endConsultation({ consultationId: id });
      expect(await stream.ended).toBe('ended');
      expect(stream.views.map((v) => ConsultationStatus[v.status])).toEqual([
        'SCHEDULED',
        'WAITING',
        'WAITING',
        'IN_PROGRESS',
        'ENDED',
      ]);
      expect(stream.views.map((v) => v.version)).toEqual([1, 2, 3, 4, 5]);
    });
  }

  it('audits the opening once, not every update', async () => {
    const id = await schedule(t, 'pat-w-audit');
    const stream = watch(as(t, 'patient', 'pat-w-audit'), id);
    await stream.until(1);
    await as(t, 'service', 'appointments').cancelConsultation({
      target: { case: 'consultationId', value: id },
    });
    expect(await stream.ended).toBe('ended');
    expect(stream.views.map((v) => ConsultationStatus[v.status])).toEqual([
      'SCHEDULED',
      'CANCELLED',
    ]);
    const { entries } = await as(t, 'clinic_admin', 'admin-w').listAuditEntries({
      resourceId: id,
      actorId: 'pat-w-audit',
    });
    expect(entries.map((e) => `${e.action} ${e.outcome}`)).toEqual(['consultation.read allowed']);
    // The delivery of the change was measured, and the ended stream is no longer counted.
    const metrics = await (await fetch(`${t.baseUrl}/metrics`)).text();
    expect(Number(metrics.match(/^watch_delivery_lag_seconds_count (\d+)/m)?.[1])).toBeGreaterThan(
      0,
    );
    expect(metrics).toMatch(/^watch_open_streams 0$/m);
  });

  it('answers NOT_FOUND for another clinic’s or someone else’s, and INVALID_ARGUMENT for a bad id', async () => {
    const id = await schedule(t, 'pat-w-own');
    /** How the stream opens: its first view ('ok', then closed by the client) or the error. */
    const first = async (client: VideoClient, consultationId: string) => {
      const stream = watch(client, consultationId, AbortSignal.timeout(10_000));
      const [view] = await stream.until(1);
      return view ? 'ok' : stream.ended;
    };
    expect(await first(as(t, 'patient', 'pat-w-own', 'clinic-2'), id)).toBe(Code.NotFound);
    expect(await first(as(t, 'patient', 'someone-else'), id)).toBe(Code.NotFound);
    expect(await first(as(t, 'patient', 'pat-w-own'), 'not-a-uuid')).toBe(Code.InvalidArgument);
    expect(await first(as(t, 'patient', 'pat-w-own'), id)).toBe('ok');
  });

  it('caps the open streams of one caller', async () => {
    const id = await schedule(t, 'pat-w-cap');
    const patient = as(t, 'patient', 'pat-w-cap');
    const stop = new AbortController();
    const open = [watch(patient, id, stop.signal), watch(patient, id, stop.signal)];
    for (const stream of open) await stream.until(1);
    const third = watch(patient, id);
    expect(await third.ended).toBe(Code.ResourceExhausted);
    stop.abort();
    for (const stream of open) await stream.ended;
    // Closed streams give their places back.
    const again = watch(patient, id, AbortSignal.timeout(5_000));
    expect((await again.until(1)).length).toBe(1);
  });

  it('ends the stream with UNAUTHENTICATED when the caller’s token expires', async () => {
    const id = await schedule(t, 'pat-w-exp');
    const token = mintToken({
      secret: DEVELOPMENT_JWT_SECRET,
      role: 'patient',
      userId: 'pat-w-exp',
      clinicId: 'clinic-1',
      expiresInSeconds: 2,
    });
    const started = Date.now();
    const stream = watch(videoClient(t.baseUrl, token), id);
    expect(await stream.until(1)).toHaveLength(1);
    expect(await stream.ended).toBe(Code.Unauthenticated);
    // At the token's exp (whole seconds), not long after.
    expect(Date.now() - started).toBeLessThan(3_500);
  });

  it('stops within SHUTDOWN_TIMEOUT_MS even when a watcher stopped reading its stream', async () => {
    const app = await startTestApp({ SHUTDOWN_TIMEOUT_MS: '2000' });
    try {
      const id = await schedule(app, 'pat-w-unread');
      const client = as(app, 'patient', 'pat-w-unread');
      const reader = client.watchConsultation({ consultationId: id })[Symbol.asyncIterator]();
      expect((await reader.next()).done).toBe(false); // one view read, then no more
      const started = Date.now();
      await app.stop();
      expect(Date.now() - started).toBeLessThan(3_000);
    } finally {
      await app.stop().catch(() => {});
    }
  });

  it('ends open streams cleanly when the service stops', async () => {
    const app = await startTestApp();
    try {
      const id = await schedule(app, 'pat-w-stop');
      const stream = watch(as(app, 'patient', 'pat-w-stop'), id);
      await stream.until(1);
      const stopping = app.stop();
      expect(await stream.ended).toBe('ended');
      await stopping;
    } finally {
      await app.stop().catch(() => {});
    }
  });
});

describe('WatchWaitingRoom', () => {
  it('sends the waiting room, then the new one after each check-in, admission and cancellation', async () => {
    const doctor = 'doc-room';
    const schedule = async (patient: string) => {
      const { consultation } = await as(t, 'service', 'appointments').scheduleConsultation({
        appointmentId: appointmentId('room'),
        doctorId: doctor,
        patientId: patient,
        ...slot(5),
      });
      return consultation!.id;
    };
    const first = await schedule('pat-room-1');
    const second = await schedule('pat-room-2');
    const stop = new AbortController();
    const lists: string[][] = [];
    let seen: () => void = () => {};
    const reading = (async () => {
      for await (const { patients } of as(t, 'doctor', doctor).watchWaitingRoom(
        {},
        { signal: stop.signal },
      )) {
        lists.push(patients.map((p) => `${p.patientId}#${p.queuePosition}`));
        seen();
      }
    })().catch((error: unknown) => ConnectError.from(error).code);
    const until = async (count: number) => {
      const deadline = Date.now() + 10_000;
      while (lists.length < count && Date.now() < deadline) {
        await new Promise<void>((resolve) => {
          seen = resolve;
          setTimeout(resolve, 200);
        });
      }
      return lists;
    };
    await until(1);
    await as(t, 'patient', 'pat-room-1').checkIn({ consultationId: first });
    await until(2);
    await as(t, 'patient', 'pat-room-2').checkIn({ consultationId: second });
    await until(3);
    await as(t, 'doctor', doctor).admitPatient({ consultationId: first });
    await until(4);
    await as(t, 'service', 'appointments').cancelConsultation({
      target: { case: 'consultationId', value: second },
    });
    await until(5);
    stop.abort();
    expect(await reading).toBe(Code.Canceled);
    expect(lists).toEqual([
      [],
      ['pat-room-1#1'],
      ['pat-room-1#1', 'pat-room-2#2'],
      ['pat-room-2#1'],
      [],
    ]);
  });

  it('is for the doctor, nurses and clinic admins only, inside the clinic', async () => {
    const opens = async (client: VideoClient) => {
      const stop = new AbortController();
      try {
        for await (const _ of client.watchWaitingRoom({}, { signal: stop.signal })) {
          stop.abort();
          return 'ok';
        }
        return 'ended';
      } catch (error) {
        return stop.signal.aborted ? 'ok' : ConnectError.from(error).code;
      }
    };
    expect(await opens(as(t, 'patient', 'pat-room-x'))).toBe(Code.PermissionDenied);
    expect(await opens(as(t, 'service', 'appointments'))).toBe(Code.PermissionDenied);
    expect(await opens(as(t, 'nurse', 'nurse-room'))).toBe('ok');
  });
});

describe.runIf(serverForSeveralCopies)('WatchConsultation across copies', () => {
  it('shows a change made through another copy, and what changed while its LISTEN connection was cut', async () => {
    const database = await createTestDatabase();
    const a = await startTestApp({}, database);
    // Copy B reaches the database through a proxy the test can cut.
    const direct = new URL(database.env.DATABASE_URL!);
    const proxy = await startTcpProxy({ host: direct.hostname, port: Number(direct.port || 5432) });
    const proxied = new URL(direct);
    proxied.port = String(proxy.port);
    const b = await startTestApp(
      { DATABASE_URL: proxied.toString(), MIGRATE_ON_START: 'false' },
      database,
    );
    try {
      const id = await schedule(a, 'pat-w-copies');
      const stream = watch(as(b, 'patient', 'pat-w-copies'), id);
      await stream.until(1);
      // The doctor's waiting room, watched on B too.
      const leave = new AbortController();
      const room = as(b, 'doctor', 'doc-w')
        .watchWaitingRoom({}, { signal: leave.signal })
        [Symbol.asyncIterator]();
      const patientsOf = async () => {
        const next = await room.next();
        return next.done ? undefined : next.value.patients;
      };
      expect(await patientsOf()).toEqual([]);
      await as(a, 'patient', 'pat-w-copies').checkIn({ consultationId: id });
      expect((await stream.until(2)).map((v) => v.version)).toEqual([1, 2]);
      const waiting = (await patientsOf()) ?? [];
      expect(waiting.map((p) => [p.patientId, p.queuePosition])).toEqual([['pat-w-copies', 1]]);
      leave.abort();

      // B loses the database, its LISTEN connection included; A admits and starts
      // meanwhile, so their notifications never reach B.
      await proxy.stop();
      await as(a, 'doctor', 'doc-w').admitPatient({ consultationId: id });
      await as(a, 'doctor', 'doc-w').startConsultation({ consultationId: id });
      await proxy.start();
      // Back: B listens again and its watchers read the consultation as it is now.
      // (Within 3 s: a later unrelated write, such as the reconciler's, must not be what
      // brings the change.)
      const [, , latest] = await stream.until(3, 3_000);
      expect(latest).toEqual({ status: ConsultationStatus.IN_PROGRESS, version: 4 });

      await as(a, 'doctor', 'doc-w').endConsultation({ consultationId: id });
      expect(await stream.ended).toBe('ended');
      expect(stream.views.map((v) => v.version)).toEqual([1, 2, 4, 5]);
      expect(ConsultationStatus[stream.views.at(-1)!.status]).toBe('ENDED');
    } finally {
      await b.stop();
      await a.stop();
      await proxy.close();
      await database.drop();
    }
  }, 60_000);
});
