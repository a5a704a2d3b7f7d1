import { Code, ConnectError } from '@connectrpc/connect';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConsultationStatus, ParticipantRole } from '../../gen/video/v1/consultation_pb.js';
import {
  TechnicalIssueType,
  type WatchConsultationResponse,
} from '../../gen/video/v1/video_service_pb.js';
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

async function schedule(app: TestApp, patient: string, doctorId = 'doc-w') {
  const { consultation } = await as(app, 'service', 'appointments').scheduleConsultation({
    appointmentId: appointmentId('watch'),
    doctorId,
    patientId: patient,
    ...slot(5),
  });
  return consultation!.id;
}

/**
 * Reads a stream in the background: every view, every message (keep-alives and moves in
 * the queue too), and how it ended.
 */
function watch(client: VideoClient, consultationId: string, signal?: AbortSignal) {
  const views: { status: ConsultationStatus; version: number }[] = [];
  const messages: WatchConsultationResponse[] = [];
  let seen: () => void = () => {};
  const ended = (async () => {
    try {
      for await (const message of client.watchConsultation({ consultationId }, { signal })) {
        messages.push(message);
        const { consultation } = message;
        if (consultation) {
          views.push({ status: consultation.status, version: consultation.version });
        }
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
  /** Resolves once `count` messages of any kind have arrived (or as `until`). */
  const untilMessages = async (count: number, withinMs = 10_000) => {
    const deadline = Date.now() + withinMs;
    while (messages.length < count && Date.now() < deadline) {
      const next = new Promise<void>((resolve) => {
        seen = resolve;
        setTimeout(resolve, 100);
      });
      if (await Promise.race([next.then(() => false), ended.then(() => true)])) break;
    }
    return messages;
  };
  return { views, messages, ended, until, untilMessages };
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
    // Closed streams give their places back, once the service has seen them close (which
    // may come a moment after the client's end of them): a stream refused meanwhile is
    // refused for the cap, and one opens within seconds.
    const deadline = Date.now() + 5_000;
    for (;;) {
      const again = watch(patient, id, AbortSignal.timeout(5_000));
      if ((await again.until(1)).length === 1) break;
      expect(await again.ended).toBe(Code.ResourceExhausted);
      expect(Date.now()).toBeLessThan(deadline);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  });

  it('shows a reported technical issue, and the waiting patient’s place as it moves', async () => {
    // A doctor of their own: nobody else waits in their queue.
    const doctor = as(t, 'doctor', 'doc-w-queue');
    const ahead = await schedule(t, 'pat-w-ahead', 'doc-w-queue');
    const id = await schedule(t, 'pat-w-queue', 'doc-w-queue');
    const patient = as(t, 'patient', 'pat-w-queue');
    await as(t, 'patient', 'pat-w-ahead').checkIn({ consultationId: ahead });
    const stream = watch(patient, id);
    await stream.untilMessages(1);
    await patient.checkIn({ consultationId: id });
    await stream.untilMessages(2);
    // The patient ahead is admitted: only the place moves, the consultation is the same.
    await doctor.admitPatient({ consultationId: ahead });
    await stream.untilMessages(3);
    await doctor.admitPatient({ consultationId: id });
    await stream.untilMessages(4);
    const { issueId } = await patient.reportTechnicalIssue({
      consultationId: id,
      issueType: TechnicalIssueType.AUDIO,
      description: 'no sound',
    });
    await stream.untilMessages(5);
    await as(t, 'service', 'appointments').cancelConsultation({
      target: { case: 'consultationId', value: id },
    });
    expect(await stream.ended).toBe('ended');
    expect(
      stream.messages.map((m) => [
        m.consultation ? ConsultationStatus[m.consultation.status] : '-',
        m.consultation?.version ?? '-',
        m.queuePosition,
        m.technicalIssues.length,
      ]),
    ).toEqual([
      ['SCHEDULED', 1, 0, 0],
      ['WAITING', 2, 2, 0],
      ['-', '-', 1, 0],
      ['WAITING', 3, 0, 0],
      ['WAITING', 4, 0, 1],
      ['CANCELLED', 5, 0, 1],
    ]);
    expect(stream.messages[4]!.technicalIssues[0]).toMatchObject({
      issueId,
      reporterId: 'pat-w-queue',
      reporterRole: ParticipantRole.PATIENT,
      issueType: TechnicalIssueType.AUDIO,
      description: 'no sound',
    });
    expect(stream.messages.some((m) => m.keepAlive)).toBe(false);
  });

  it('keeps a quiet stream alive with messages that carry nothing else', async () => {
    const app = await startTestApp({ WATCH_KEEPALIVE_SECONDS: '1' });
    try {
      const id = await schedule(app, 'pat-w-quiet');
      const stop = new AbortController();
      const stream = watch(as(app, 'patient', 'pat-w-quiet'), id, stop.signal);
      const started = Date.now();
      await stream.untilMessages(3, 5_000);
      const [first, ...rest] = stream.messages;
      expect(first!.consultation?.version).toBe(1);
      expect(rest.length).toBeGreaterThanOrEqual(2);
      for (const message of rest) {
        expect(message.keepAlive).toBe(true);
        expect(message.consultation).toBeUndefined();
      }
      // One a second, not sooner.
      expect(Date.now() - started).toBeGreaterThanOrEqual(1_900);
      // The waiting room's stream too.
      const room = as(app, 'doctor', 'doc-w')
        .watchWaitingRoom({}, { signal: stop.signal })
        [Symbol.asyncIterator]();
      expect((await room.next()).value).toMatchObject({ keepAlive: false });
      expect((await room.next()).value).toMatchObject({ keepAlive: true, patients: [] });
      stop.abort();
      await stream.ended;
    } finally {
      await app.stop();
    }
  });

  it('ends the stream with UNAUTHENTICATED once the service would refuse the caller’s token', async () => {
    // A second of clock skew allowed: the token is accepted until a second past its exp,
    // for a call as for a stream.
    const app = await startTestApp({ AUTH_CLOCK_SKEW_SECONDS: '1' });
    try {
      const id = await schedule(app, 'pat-w-exp');
      const token = mintToken({
        secret: DEVELOPMENT_JWT_SECRET,
        role: 'patient',
        userId: 'pat-w-exp',
        clinicId: 'clinic-1',
        expiresInSeconds: 2,
      });
      const { exp } = JSON.parse(
        Buffer.from(token.split('.')[1] ?? '', 'base64url').toString(),
      ) as { exp: number };
      const refusedFrom = (exp + 1) * 1000;
      const stream = watch(videoClient(app.baseUrl, token), id);
      expect(await stream.until(1)).toHaveLength(1);
      expect(await stream.ended).toBe(Code.Unauthenticated);
      // Not at exp, while a call with the token would still be answered; soon after the skew.
      expect(Date.now()).toBeGreaterThanOrEqual(refusedFrom);
      expect(Date.now()).toBeLessThan(refusedFrom + 1_500);
    } finally {
      await app.stop();
    }
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

  it('loses no update when its LISTEN connection is terminated mid-stream (pg_terminate_backend)', async () => {
    const database = await createTestDatabase();
    const a = await startTestApp({}, database);
    const b = await startTestApp({ MIGRATE_ON_START: 'false' }, database);
    const admin = new pg.Client({ connectionString: database.env.DATABASE_URL });
    await admin.connect();
    try {
      const id = await schedule(a, 'pat-w-kill');
      const stream = watch(as(b, 'patient', 'pat-w-kill'), id);
      await stream.until(1);
      // Every copy's listening connection goes; changes are made at once, most likely
      // before either copy has listened again (so their notifications are lost).
      const { rows } = await admin.query<{ killed: boolean }>(
        `select pg_terminate_backend(pid) as killed from pg_stat_activity
          where application_name = 'video-service-listen' and datname = current_database()`,
      );
      expect(rows.map((r) => r.killed)).toEqual([true, true]);
      await as(a, 'patient', 'pat-w-kill').checkIn({ consultationId: id });
      await as(a, 'doctor', 'doc-w').admitPatient({ consultationId: id });
      // Back: B's watcher reads the consultation afresh and shows the admission with no
      // later change to bring it, then follows it as before.
      const deadline = Date.now() + 5_000;
      while (stream.views.at(-1)!.version < 3 && Date.now() < deadline) {
        await stream.until(stream.views.length + 1, deadline - Date.now());
      }
      expect(stream.views.at(-1)).toEqual({ status: ConsultationStatus.WAITING, version: 3 });
      await as(a, 'doctor', 'doc-w').startConsultation({ consultationId: id });
      await as(a, 'doctor', 'doc-w').endConsultation({ consultationId: id });
      expect(await stream.ended).toBe('ended');
      const versions = stream.views.map((v) => v.version);
      expect(versions).toEqual([...new Set(versions)].sort((x, y) => x - y));
      expect(stream.views.at(-1)).toEqual({ status: ConsultationStatus.ENDED, version: 5 });
    } finally {
      await admin.end();
      await b.stop();
      await a.stop();
      await database.drop();
    }
  }, 60_000);
});
