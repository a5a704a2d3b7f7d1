import { randomUUID } from 'node:crypto';
import { Code, ConnectError } from '@connectrpc/connect';
import { OpenVidu } from 'openvidu-node-client';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  ConsultationStatus,
  DisconnectReason,
  EndReason,
  ParticipantRole,
  Provider,
  RecordingStatus,
} from '../../gen/video/v1/consultation_pb.js';
import { providerSessionName } from '../../src/providers/session-name.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { appointmentId, slot, videoClient } from '../support/clients.js';
import { createTestDatabase, serverForSeveralCopies } from '../support/database.js';
import { collectRecords, uniquePrefix } from '../support/events.js';
import {
  type OpenViduStandIn,
  startOpenViduStandIn,
  type WebhookEvent,
} from '../support/openvidu-standin.js';

/**
 * The service with OpenVidu as its provider, end to end: real server, real PostgreSQL,
 * real clients, and the stand-in OpenVidu server (the suite's one fake).
 */
const SECRET = 'e2e-openvidu-secret';
const WEBHOOK_SECRET = 'e2e-openvidu-webhook-secret';
const HALF_OPEN_AFTER_MS = 2000;
/** OPENVIDU_RECORDING_AUTOSTOP_TIMEOUT, short: 120 s by default. */
const AUTOSTOP_MS = 500;

const providerEnv = (standIn: OpenViduStandIn) => ({
  OPENVIDU_URL: standIn.url,
  OPENVIDU_SECRET: SECRET,
  OPENVIDU_TIMEOUT_MS: '1000',
  PROVIDER_DEFAULT: 'openvidu',
  PROVIDER_FAILURES_TO_OPEN: '2',
  PROVIDER_HALF_OPEN_AFTER_MS: String(HALF_OPEN_AFTER_MS),
  OPENVIDU_WEBHOOK_SECRET: WEBHOOK_SECRET,
  PROVIDER_BY_CLINIC: 'clinic-on-jitsi=jitsi',
});

const cleanups: (() => Promise<unknown>)[] = [];
let standIn: OpenViduStandIn;
let app: TestApp;
beforeAll(async () => {
  standIn = await startOpenViduStandIn({ secret: SECRET, recordingAutostopTimeoutMs: AUTOSTOP_MS });
  cleanups.push(() => standIn.close());
  app = await startTestApp(providerEnv(standIn));
  cleanups.push(() => app.stop());
});
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});
afterEach(() => {
  standIn.failWith(undefined);
  standIn.delay(0);
  standIn.configureWebhook(undefined);
});

/** A consultation scheduled by the appointments service, with its doctor's and patient's clients. */
async function visit(t: TestApp = app, clinicId = 'clinic-1') {
  const patientId = `pat-${randomUUID().slice(0, 8)}`;
  const service = videoClient(t.baseUrl, t.token('service', 'appointments', clinicId));
  const { consultation } = await service.scheduleConsultation({
    appointmentId: appointmentId('ov'),
    doctorId: 'doc-ov',
    patientId,
    ...slot(5),
  });
  return {
    id: consultation!.id,
    service,
    doctor: videoClient(t.baseUrl, t.token('doctor', 'doc-ov', clinicId)),
    patient: videoClient(t.baseUrl, t.token('patient', patientId, clinicId)),
    admin: videoClient(t.baseUrl, t.token('clinic_admin', 'admin', clinicId)),
  };
}

/** The stand-in's requests made while `fn` ran, as "METHOD path status". */
async function requestsDuring(fn: () => Promise<unknown>): Promise<string[]> {
  const before = standIn.requests.length;
  await fn();
  return standIn.requests
    .slice(before)
    .map((r) => `${r.method} ${r.path.split('?')[0]} ${r.status}`)
    .filter((r) => !r.includes('/config')); // health probes
}

const code = (promise: Promise<unknown>) =>
  promise.then(
    () => undefined,
    (error: unknown) => ConnectError.from(error).code,
  );

async function until<T>(read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) {
      const shown = JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? String(v) : v));
      throw new Error(`timed out; last value: ${shown}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('the OpenVidu call paths', () => {
  it('creates the session under the opaque id, a connection per participant, and closes it', async () => {
    const v = await visit();
    const sessionId = providerSessionName(v.id);
    let started: Awaited<ReturnType<typeof v.doctor.startConsultation>> | undefined;
    expect(
      await requestsDuring(async () => {
        started = await v.doctor.startConsultation({ consultationId: v.id });
      }),
    ).toEqual(['POST /openvidu/api/sessions 200']);
    expect(started?.consultation?.provider).toBe(Provider.OPENVIDU);
    expect(started?.consultation?.providerSessionId).toBe(sessionId);

    const doctorToken = await v.doctor.generateToken({ consultationId: v.id });
    const patientToken = await v.patient.generateToken({ consultationId: v.id });
    expect(doctorToken.provider).toBe(Provider.OPENVIDU);
    expect(doctorToken.token).toMatch(new RegExp(`sessionId=${sessionId}&token=tok_`));
    expect(doctorToken.joinUrl).toBe(doctorToken.token);
    expect(patientToken.role).toBe(ParticipantRole.PATIENT);

    const session = standIn.session(sessionId) as {
      connections: { content: { token: string; role: string; serverData: string }[] };
    };
    const byToken = new Map(session.connections.content.map((c) => [c.token, c]));
    expect(byToken.get(doctorToken.token)?.role).toBe('MODERATOR');
    expect(byToken.get(patientToken.token)?.role).toBe('PUBLISHER');
    for (const { serverData } of session.connections.content) {
      // The opaque participant id and nothing else: no user id, no name.
      expect(Object.keys(JSON.parse(serverData))).toEqual(['participantId']);
      expect(serverData).not.toMatch(/doc-ov|pat-/);
    }

    expect(await requestsDuring(() => v.doctor.endConsultation({ consultationId: v.id }))).toEqual([
      `DELETE /openvidu/api/sessions/${sessionId} 204`,
    ]);
    expect(standIn.session(sessionId)).toBeUndefined();
  });

  it('reuses a session that already exists (409), as after another copy created it', async () => {
    const v = await visit();
    const sessionId = providerSessionName(v.id);
    await new OpenVidu(standIn.url, SECRET).createSession({ customSessionId: sessionId });
    expect(
      await requestsDuring(() => v.doctor.startConsultation({ consultationId: v.id })),
    ).toEqual(['POST /openvidu/api/sessions 409', `GET /openvidu/api/sessions/${sessionId} 200`]);
    const token = await v.doctor.generateToken({ consultationId: v.id });
    expect(token.providerSessionId).toBe(sessionId);
  });

  it('re-creates a session OpenVidu forgot (404) when a participant asks for a token', async () => {
    const v = await visit();
    const sessionId = providerSessionName(v.id);
    await v.doctor.startConsultation({ consultationId: v.id });
    await v.doctor.generateToken({ consultationId: v.id });
    standIn.forgetSessions();
    expect(await requestsDuring(() => v.patient.generateToken({ consultationId: v.id }))).toEqual([
      `POST /openvidu/api/sessions/${sessionId}/connection 404`,
      'POST /openvidu/api/sessions 200',
      `POST /openvidu/api/sessions/${sessionId}/connection 200`,
    ]);
    expect(standIn.session(sessionId)).toBeDefined();
  });

  it('answers UNAVAILABLE within its timeout when OpenVidu hangs', async () => {
    const v = await visit();
    await v.doctor.startConsultation({ consultationId: v.id });
    standIn.delay(4000);
    const started = performance.now();
    expect(await code(v.patient.generateToken({ consultationId: v.id }))).toBe(Code.Unavailable);
    expect(performance.now() - started).toBeLessThan(2500);
  });
});

describe('choosing the provider', () => {
  it('uses the default provider, and the one configured for a clinic', async () => {
    const onDefault = await visit();
    const onJitsi = await visit(app, 'clinic-on-jitsi');
    for (const [v, provider] of [
      [onDefault, Provider.OPENVIDU],
      [onJitsi, Provider.JITSI],
    ] as const) {
      const { consultation } = await v.doctor.startConsultation({ consultationId: v.id });
      expect(consultation?.provider).toBe(provider);
      expect((await v.patient.generateToken({ consultationId: v.id })).provider).toBe(provider);
    }
  });
});

describe('failover', () => {
  it('sends new consultations to Jitsi while OpenVidu is down, keeps live ones, and comes back', async () => {
    const live = await visit();
    await live.doctor.startConsultation({ consultationId: live.id });

    standIn.failWith(503);
    const first = await visit();
    const second = await visit();
    for (const v of [first, second]) {
      const { consultation } = await v.doctor.startConsultation({ consultationId: v.id });
      expect(consultation?.provider).toBe(Provider.JITSI);
      const token = await v.patient.generateToken({ consultationId: v.id });
      expect(token.joinUrl).toMatch(/^https:\/\/.*\?jwt=/);
    }
    const status = await first.admin.getProviderStatus({});
    const openVidu = status.providers.find((p) => p.provider === Provider.OPENVIDU);
    expect(openVidu).toMatchObject({ configured: true, healthy: false, circuitState: 'open' });
    expect(openVidu?.lastError).toMatch(/HTTP 503/);
    expect(status.providers.find((p) => p.provider === Provider.JITSI)?.healthy).toBe(true);

    // The circuit is open: the next one goes straight to Jitsi, without asking OpenVidu.
    const third = await visit();
    expect(
      await requestsDuring(async () => {
        const { consultation } = await third.doctor.startConsultation({ consultationId: third.id });
        expect(consultation?.provider).toBe(Provider.JITSI);
      }),
    ).toEqual([]);
    // A session that lives on OpenVidu stays there: its participants wait for OpenVidu.
    expect(await code(live.patient.generateToken({ consultationId: live.id }))).toBe(
      Code.Unavailable,
    );

    standIn.failWith(undefined);
    await new Promise((r) => setTimeout(r, HALF_OPEN_AFTER_MS + 100));
    const after = await visit();
    const { consultation } = await after.doctor.startConsultation({ consultationId: after.id });
    expect(consultation?.provider).toBe(Provider.OPENVIDU);
    const recovered = (await after.admin.getProviderStatus({})).providers.find(
      (p) => p.provider === Provider.OPENVIDU,
    );
    expect(recovered).toMatchObject({ healthy: true, circuitState: 'closed' });
    expect((await live.patient.generateToken({ consultationId: live.id })).provider).toBe(
      Provider.OPENVIDU,
    );
  });
});

describe('recording with consent', () => {
  const deliverWebhooks = () =>
    standIn.configureWebhook({
      url: `${app.baseUrl}/webhooks/openvidu`,
      headers: { 'X-Webhook-Secret': WEBHOOK_SECRET },
      autoDeliver: true,
    });

  it('shows a watcher each participant joining and leaving, as new versions', async () => {
    deliverWebhooks();
    const v = await visit();
    await v.doctor.startConsultation({ consultationId: v.id });
    const stop = new AbortController();
    /** Each view as who is connected: "doctor patient" (roles of the connected). */
    const seen: { version: number; connected: string }[] = [];
    const watching = (async () => {
      for await (const { consultation } of v.doctor.watchConsultation(
        { consultationId: v.id },
        { signal: stop.signal },
      )) {
        if (!consultation) continue;
        const connected = consultation.participants
          .filter((p) => p.connected)
          .map((p) => ParticipantRole[p.role].toLowerCase())
          .sort()
          .join(' ');
        seen.push({ version: consultation.version, connected });
      }
    })().catch(() => {});
    const shown = (connected: string) =>
      until(
        async () => seen.at(-1),
        (last) => last?.connected === connected,
      );
    await shown('');
    const doctor = standIn.join((await v.doctor.generateToken({ consultationId: v.id })).token);
    await shown('doctor');
    const patient = standIn.join((await v.patient.generateToken({ consultationId: v.id })).token);
    await shown('doctor patient');
    standIn.leave(patient);
    await shown('doctor');
    standIn.leave(doctor);
    await shown('');
    stop.abort();
    await watching;
    // Each view newer than the one before.
    const versions = seen.map((s) => s.version);
    expect(versions).toEqual([...new Set(versions)].sort((a, b) => a - b));
  });

  it('records on OpenVidu only with both consents, and keeps the URL once ready', async () => {
    deliverWebhooks();
    const v = await visit();
    const sessionId = providerSessionName(v.id);
    await v.doctor.startConsultation({ consultationId: v.id });
    standIn.join((await v.doctor.generateToken({ consultationId: v.id })).token);
    standIn.join((await v.patient.generateToken({ consultationId: v.id })).token);

    expect(await code(v.doctor.startRecording({ consultationId: v.id }))).toBe(
      Code.FailedPrecondition,
    );
    await v.doctor.recordConsent({ consultationId: v.id });
    expect(await code(v.doctor.startRecording({ consultationId: v.id }))).toBe(
      Code.FailedPrecondition,
    );
    await v.patient.recordConsent({ consultationId: v.id });
    const started = await v.doctor.startRecording({ consultationId: v.id });
    expect(started.consultation?.recordingStatus).toBe(RecordingStatus.STARTED);
    expect((standIn.session(sessionId) as { recording: boolean }).recording).toBe(true);

    const stopped = await v.doctor.stopRecording({ consultationId: v.id });
    // OpenVidu CE answers the stop once the file is processed, and posts `stopped` and
    // `ready` together, in the same millisecond here; the service may already have applied
    // them. `ready` has no URL: the service asks OpenVidu for it.
    expect([RecordingStatus.STOPPED, RecordingStatus.READY]).toContain(
      stopped.consultation?.recordingStatus,
    );
    const ready = await until(
      () => v.doctor.getConsultationStatus({ consultationId: v.id }),
      (r) => r.consultation?.recordingStatus === RecordingStatus.READY,
    );
    expect(ready.consultation?.recordingUrl).toBe(
      `${standIn.url}/openvidu/recordings/${sessionId}/${sessionId}.mp4`,
    );
    const ended = await v.doctor.endConsultation({ consultationId: v.id });
    expect(ended.consultation?.recordingUrl).toBe(ready.consultation?.recordingUrl);
  });

  it('when everyone leaves a recording, OpenVidu stops it after its timeout and closes the session', async () => {
    deliverWebhooks();
    const v = await visit();
    const sessionId = providerSessionName(v.id);
    await v.doctor.startConsultation({ consultationId: v.id });
    const doctor = standIn.join((await v.doctor.generateToken({ consultationId: v.id })).token);
    const patient = standIn.join((await v.patient.generateToken({ consultationId: v.id })).token);
    await v.doctor.recordConsent({ consultationId: v.id });
    await v.patient.recordConsent({ consultationId: v.id });
    await v.doctor.startRecording({ consultationId: v.id });

    standIn.leave(patient);
    standIn.leave(doctor);
    // The session stays open and recording, waiting for someone to come back.
    expect(standIn.session(sessionId)).toMatchObject({ recording: true });
    const status = () => v.doctor.getConsultationStatus({ consultationId: v.id });
    expect((await status()).consultation?.status).toBe(ConsultationStatus.IN_PROGRESS);

    const ended = await until(
      status,
      (r) =>
        r.consultation?.status === ConsultationStatus.ENDED &&
        r.consultation.recordingStatus === RecordingStatus.READY,
    );
    expect(ended.consultation?.endReason).toBe(EndReason.PROVIDER_CLOSED);
    expect(ended.consultation?.recordingUrl).toBe(
      `${standIn.url}/openvidu/recordings/${sessionId}/${sessionId}.mp4`,
    );
    const closing = standIn.events.filter(
      (e) => e.sessionId === sessionId && e.event !== 'participantLeft',
    );
    expect(closing.slice(-3).map((e) => [e.event, e.status, e.reason])).toEqual([
      ['recordingStatusChanged', 'stopped', 'automaticStop'],
      ['recordingStatusChanged', 'ready', 'automaticStop'],
      ['sessionDestroyed', undefined, 'automaticStop'],
    ]);
  });
});

describe('the sweeper', () => {
  it('ends an overrun consultation and closes its OpenVidu session', async () => {
    let offsetMs = 0;
    const clock = { now: () => new Date(Date.now() + offsetMs) };
    const t = await startTestApp(
      { ...providerEnv(standIn), SWEEP_INTERVAL_MS: '100', MAX_CONSULTATION_MINUTES: '60' },
      undefined,
      clock,
    );
    cleanups.push(() => t.stop());
    const v = await visit(t);
    const sessionId = providerSessionName(v.id);
    await v.doctor.startConsultation({ consultationId: v.id });
    standIn.join((await v.doctor.generateToken({ consultationId: v.id })).token);
    standIn.join((await v.patient.generateToken({ consultationId: v.id })).token);

    offsetMs = 2 * 3600_000;
    const ended = await until(
      () => v.doctor.getConsultationStatus({ consultationId: v.id }),
      (r) => r.consultation?.status === ConsultationStatus.ENDED,
    );
    expect(ended.consultation?.endReason).toBe(EndReason.MAX_DURATION);
    await until(
      async () => standIn.session(sessionId),
      (session) => session === undefined,
    );
    expect(
      standIn.requests.filter((r) => r.method === 'DELETE' && r.path.endsWith(sessionId)),
    ).toEqual([{ method: 'DELETE', path: `/openvidu/api/sessions/${sessionId}`, status: 204 }]);
  });
});

describe('reconciliation after the end', () => {
  it('closes the connections of an ended consultation whose leaves were all lost', async () => {
    const t = await startTestApp({ ...providerEnv(standIn), RECONCILE_INTERVAL_MS: '200' });
    cleanups.push(() => t.stop());
    const v = await visit(t);
    await v.doctor.startConsultation({ consultationId: v.id });
    const t0 = Date.now() - 10 * 60_000;
    standIn.join((await v.doctor.generateToken({ consultationId: v.id })).token, { at: t0 });
    standIn.join((await v.patient.generateToken({ consultationId: v.id })).token, { at: t0 });
    const participants = () =>
      v.doctor
        .getConsultationStatus({ consultationId: v.id })
        .then((r) => r.consultation?.participants ?? []);
    // No webhooks reach this copy: the reconciler alone sees both join.
    await until(participants, (ps) => ps.every((p) => p.connected));

    // The doctor ends it; OpenVidu's leave webhooks never arrive.
    const ended = await v.doctor.endConsultation({ consultationId: v.id });
    const endedAt = Number(ended.consultation?.endedAt?.seconds) * 1000;
    const after = await until(participants, (ps) => ps.every((p) => !p.connected));
    for (const p of after) {
      expect(p.connectedSeconds).toBeGreaterThanOrEqual(Math.floor((endedAt - t0) / 1000) - 1);
      expect(p.connectedSeconds).toBeLessThanOrEqual(Math.ceil((endedAt - t0) / 1000) + 1);
    }
  });
});

describe.runIf(serverForSeveralCopies)(
  'attendance from webhooks, with two copies of the service',
  () => {
    it('keeps exact totals through duplicates, reordering and a lost leave the reconciler repairs', async () => {
      const database = await createTestDatabase();
      cleanups.push(() => database.drop());
      const prefix = uniquePrefix('openvidu');
      const env = {
        ...providerEnv(standIn),
        KAFKA_BROKERS: inject('kafkaBrokers'),
        KAFKA_TOPIC_PREFIX: prefix,
        RECONCILE_INTERVAL_MS: '200',
      };
      const a = await startTestApp(env, database);
      cleanups.push(() => a.stop());
      const b = await startTestApp({ ...env, MIGRATE_ON_START: 'false' }, database);
      cleanups.push(() => b.stop());
      const topics = [
        'video.participant.joined',
        'video.participant.left',
        'video.consultation.ended',
      ];
      const reader = await collectRecords(
        inject('kafkaBrokers'),
        topics.map((t) => prefix + t),
      );
      cleanups.push(() => reader.stop());
      const deliverTo = async (t: TestApp, event: WebhookEvent | undefined) => {
        standIn.configureWebhook({
          url: `${t.baseUrl}/webhooks/openvidu`,
          headers: { 'X-Webhook-Secret': WEBHOOK_SECRET },
          autoDeliver: false,
        });
        expect(await standIn.deliver(event!)).toBe(200);
      };

      const v = await visit(a);
      const sessionId = providerSessionName(v.id);
      await v.doctor.startConsultation({ consultationId: v.id });
      const t0 = Date.now() - 30 * 60_000;
      const doctorConnection = standIn.join(
        (await v.doctor.generateToken({ consultationId: v.id })).token,
        { at: t0 },
      );
      const patientFirst = standIn.join(
        (await v.patient.generateToken({ consultationId: v.id })).token,
        { at: t0 + 60_000 },
      );
      standIn.leave(patientFirst, { at: t0 + 300_000, reason: 'networkDisconnect' });
      const patientSecond = standIn.join(
        (await v.patient.generateToken({ consultationId: v.id })).token,
        { at: t0 + 400_000 },
      );
      const eventOf = (name: string, connectionId: string) =>
        standIn.events.find(
          (e) => e.event === name && e.sessionId === sessionId && e.connectionId === connectionId,
        );

      // Out of order, repeated, and spread over both copies.
      await deliverTo(b, eventOf('participantLeft', patientFirst));
      await deliverTo(a, eventOf('participantJoined', patientSecond));
      await deliverTo(a, eventOf('participantJoined', patientFirst));
      await deliverTo(b, eventOf('participantJoined', doctorConnection));
      await deliverTo(a, eventOf('participantJoined', doctorConnection));
      await deliverTo(a, eventOf('participantLeft', patientFirst));
      await deliverTo(b, eventOf('participantJoined', patientSecond));

      // The patient's second connection ends and OpenVidu's webhook for it is lost.
      const patientLeftAt = Date.now();
      standIn.leave(patientSecond);
      const patientSeconds = 240 + (patientLeftAt - (t0 + 400_000)) / 1000;
      const patientView = () =>
        v.doctor
          .getConsultationStatus({ consultationId: v.id })
          .then((r) =>
            r.consultation?.participants.find((p) => p.role === ParticipantRole.PATIENT),
          );
      // Webhooks are applied after their 200; wait until the second connection is closed too.
      const repaired = await until(
        patientView,
        (p) => p?.connected === false && (p?.connectedSeconds ?? 0) > 240,
      );
      expect(repaired?.connectedSeconds).toBeGreaterThanOrEqual(Math.floor(patientSeconds) - 1);
      expect(repaired?.connectedSeconds).toBeLessThanOrEqual(Math.ceil(patientSeconds) + 3);
      expect(repaired?.firstJoinedAt?.seconds).toBe(BigInt(Math.floor((t0 + 60_000) / 1000)));

      // The doctor leaves last: OpenVidu closes the session, which ends the consultation.
      const doctorLeftAt = Date.now();
      standIn.leave(doctorConnection, { at: doctorLeftAt });
      await deliverTo(a, eventOf('participantLeft', doctorConnection));
      const destroyed = standIn.events.find(
        (e) => e.event === 'sessionDestroyed' && e.sessionId === sessionId,
      );
      await deliverTo(b, destroyed);
      await deliverTo(a, destroyed);

      // Applied after their 200s, on two copies: wait for the last of them.
      const final = await until(
        () => v.doctor.getConsultationStatus({ consultationId: v.id }),
        (r) =>
          r.consultation?.status === ConsultationStatus.ENDED &&
          r.consultation.participants.some(
            (p) =>
              p.role === ParticipantRole.DOCTOR && p.lastDisconnectReason === DisconnectReason.LEFT,
          ),
      );
      expect(final.consultation?.endReason).toBe(EndReason.PROVIDER_CLOSED);
      const doctor = final.consultation?.participants.find(
        (p) => p.role === ParticipantRole.DOCTOR,
      );
      expect(doctor?.connectedSeconds).toBe(Math.floor((doctorLeftAt - t0) / 1000));
      expect(doctor?.lastDisconnectReason).toBe(DisconnectReason.LEFT);

      // Each transition announced exactly once, whichever copy and path saw it first.
      const mine = (topic: string) => (records: typeof reader.records) =>
        records.filter(
          (r) =>
            r.topic === prefix + topic &&
            (r.value as { consultationId?: string }).consultationId === v.id,
        );
      await reader.waitFor((records) => mine('video.consultation.ended')(records).length === 1);
      await new Promise((r) => setTimeout(r, 1000)); // room for any duplicate to show up
      const connectionsOf = (topic: string) =>
        mine(topic)(reader.records)
          .map((r) => (r.value as { connectionId: string }).connectionId)
          .sort();
      const all = [doctorConnection, patientFirst, patientSecond].sort();
      expect(connectionsOf('video.participant.joined')).toEqual(all);
      expect(connectionsOf('video.participant.left')).toEqual(all);
      expect(mine('video.consultation.ended')(reader.records)).toHaveLength(1);

      // What the copies counted: repeats recognised, the lost leave repaired.
      const counted = async (source: string, outcome: string) => {
        let total = 0;
        for (const t of [a, b]) {
          const text = await (await fetch(`${t.baseUrl}/metrics`)).text();
          const line = text
            .split('\n')
            .find((l) =>
              l.startsWith(
                `video_attendance_reports_total{source="${source}",outcome="${outcome}"}`,
              ),
            );
          total += line ? Number(line.split(' ').at(-1)) : 0;
        }
        return total;
      };
      expect(await counted('webhook', 'duplicate')).toBeGreaterThanOrEqual(4);
      expect(await counted('reconciler', 'applied')).toBeGreaterThanOrEqual(1);
    }, 60_000);
  },
);
