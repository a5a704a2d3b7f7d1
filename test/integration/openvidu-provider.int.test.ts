import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DomainError } from '../../src/domain/errors.js';
import type { VideoProvider } from '../../src/domain/ports.js';
import { createOpenViduProvider } from '../../src/providers/openvidu-provider.js';
import { providerSessionName } from '../../src/providers/session-name.js';
import { type OpenViduStandIn, startOpenViduStandIn } from '../support/openvidu-standin.js';

/**
 * The OpenVidu provider against the stand-in server: every REST call it makes, and what
 * it does with each answer OpenVidu can give.
 */
const SECRET = 'provider-test-openvidu-secret';
const TIMEOUT_MS = 500;
const expiresAt = new Date(Date.now() + 3600_000);

let standIn: OpenViduStandIn;
let provider: VideoProvider;
beforeAll(async () => {
  standIn = await startOpenViduStandIn({ secret: SECRET });
  provider = createOpenViduProvider({ url: standIn.url, secret: SECRET, timeoutMs: TIMEOUT_MS });
});
afterAll(() => standIn.close());
afterEach(() => {
  standIn.failWith(undefined);
  standIn.delay(0);
});

/** The requests made while `fn` ran, as "METHOD path status" without the query. */
async function requestsDuring(fn: () => Promise<unknown>): Promise<string[]> {
  const before = standIn.requests.length;
  await fn();
  return standIn.requests
    .slice(before)
    .map((r) => `${r.method} ${r.path.split('?')[0]} ${r.status}`);
}

const rejection = async (promise: Promise<unknown>) => {
  const error = await promise.then(
    () => expect.unreachable('should have failed'),
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(DomainError);
  return error as DomainError;
};

describe('sessions', () => {
  it('creates the session under the opaque custom id, and reuses it when it exists (409)', async () => {
    const consultationId = randomUUID();
    const sessionId = providerSessionName(consultationId);
    expect(await requestsDuring(() => provider.ensureSession(consultationId))).toEqual([
      'POST /openvidu/api/sessions 200',
    ]);
    let again: { sessionId: string } | undefined;
    expect(
      await requestsDuring(async () => {
        again = await provider.ensureSession(consultationId);
      }),
    ).toEqual(['POST /openvidu/api/sessions 409', `GET /openvidu/api/sessions/${sessionId} 200`]);
    expect(again?.sessionId).toBe(sessionId);
    expect(sessionId).not.toContain(consultationId);
  });

  it('issues one connection per participant: MODERATOR doctor, PUBLISHER patient, SUBSCRIBER observer', async () => {
    const { sessionId } = await provider.ensureSession(randomUUID());
    const doctor = await provider.issueToken({
      sessionId,
      participantId: 'participant-doctor',
      role: 'doctor',
      expiresAt,
    });
    const patient = await provider.issueToken({
      sessionId,
      participantId: 'participant-patient',
      role: 'patient',
      expiresAt,
    });
    expect(doctor.token).toMatch(new RegExp(`^wss?://.*sessionId=${sessionId}.*token=tok_`));
    expect(doctor.joinUrl).toBe(doctor.token);
    expect(doctor.expiresAt).toEqual(expiresAt);
    const observer = await provider.issueToken({
      sessionId,
      participantId: 'participant-observer',
      role: 'observer',
      expiresAt,
    });
    const session = standIn.session(sessionId) as {
      connections: { content: { role: string; serverData: string; token: string }[] };
    };
    const byToken = new Map(session.connections.content.map((c) => [c.token, c]));
    expect(byToken.get(doctor.token)?.role).toBe('MODERATOR');
    expect(byToken.get(patient.token)?.role).toBe('PUBLISHER');
    expect(byToken.get(observer.token)?.role).toBe('SUBSCRIBER');
    expect(JSON.parse(byToken.get(patient.token)?.serverData ?? '')).toEqual({
      participantId: 'participant-patient',
    });
  });

  it('re-creates a session the server forgot (404) when a token is asked for', async () => {
    const { sessionId } = await provider.ensureSession(randomUUID());
    await provider.issueToken({ sessionId, participantId: 'p1', role: 'doctor', expiresAt });
    standIn.forgetSessions();
    const requests = await requestsDuring(() =>
      provider.issueToken({ sessionId, participantId: 'p2', role: 'patient', expiresAt }),
    );
    expect(requests).toEqual([
      `POST /openvidu/api/sessions/${sessionId}/connection 404`,
      'POST /openvidu/api/sessions 200',
      `POST /openvidu/api/sessions/${sessionId}/connection 200`,
    ]);
    expect(standIn.session(sessionId)).toBeDefined();
  });

  it('closes a session, and closing one already gone succeeds without re-creating it', async () => {
    const { sessionId } = await provider.ensureSession(randomUUID());
    expect(await requestsDuring(() => provider.endSession(sessionId))).toEqual([
      `DELETE /openvidu/api/sessions/${sessionId} 204`,
    ]);
    expect(standIn.session(sessionId)).toBeUndefined();
    const eventsBefore = standIn.events.length;
    // Gone, or never there: one DELETE answered 404, and no POST /sessions, which would
    // create the session again and fire sessionCreated and sessionDestroyed webhooks.
    expect(await requestsDuring(() => provider.endSession(sessionId))).toEqual([
      `DELETE /openvidu/api/sessions/${sessionId} 404`,
    ]);
    const never = providerSessionName(randomUUID());
    expect(await requestsDuring(() => provider.endSession(never))).toEqual([
      `DELETE /openvidu/api/sessions/${never} 404`,
    ]);
    expect(standIn.events.slice(eventsBefore)).toEqual([]);
    expect(standIn.session(sessionId)).toBeUndefined();
  });

  it('lists the live connections of many sessions in one call, unknown ones left out', async () => {
    const { sessionId } = await provider.ensureSession(randomUUID());
    const { token } = await provider.issueToken({
      sessionId,
      participantId: 'participant-live',
      role: 'patient',
      expiresAt,
    });
    await provider.issueToken({
      sessionId,
      participantId: 'never-joins',
      role: 'doctor',
      expiresAt,
    });
    const joinedAt = Date.now() - 60_000;
    const connectionId = standIn.join(token, { at: joinedAt });
    const gone = providerSessionName(randomUUID());
    let live: ReadonlyMap<string, unknown> | undefined;
    expect(
      await requestsDuring(async () => {
        live = await provider.liveSessions?.([sessionId, gone]);
      }),
    ).toEqual(['GET /openvidu/api/sessions 200']);
    expect(live?.has(gone)).toBe(false);
    // Only the connection in use is live; the pending one (token never used) is not.
    expect(live?.get(sessionId)).toEqual([
      { connectionId, participantId: 'participant-live', joinedAt: new Date(joinedAt) },
    ]);
  });
});

describe('recording', () => {
  const recording = () => provider.recording!;

  it('starts, reuses a running recording (409), stops, and reports the URL once ready', async () => {
    const { sessionId } = await provider.ensureSession(randomUUID());
    const { token } = await provider.issueToken({
      sessionId,
      participantId: 'p',
      role: 'doctor',
      expiresAt,
    });
    const nobody = await rejection(recording().start(sessionId));
    expect(nobody.code).toBe('failed_precondition');
    expect(nobody.message).toMatch(/someone connected/);

    standIn.join(token);
    const { recordingId } = await recording().start(sessionId);
    expect(await recording().start(sessionId)).toEqual({ recordingId });
    expect(await recording().status(recordingId)).toEqual({ status: 'started', url: undefined });
    expect(await requestsDuring(() => recording().stop(sessionId, recordingId))).toEqual([
      `POST /openvidu/api/recordings/stop/${recordingId} 200`,
    ]);
    // OpenVidu CE processes the file before it answers: the recording is ready at once.
    expect(await recording().status(recordingId)).toEqual({
      status: 'ready',
      url: `${standIn.url}/openvidu/recordings/${recordingId}/${recordingId}.mp4`,
    });
    // Stopping a recording that is no longer running, or that never was, succeeds.
    await recording().stop(sessionId, recordingId);
    await recording().stop(sessionId, 'no-such-recording');
    expect(await recording().status('no-such-recording')).toBeUndefined();
  });

  it('says the session is closed when asked to record one the server forgot, without creating it', async () => {
    const { sessionId } = await provider.ensureSession(randomUUID());
    const { token } = await provider.issueToken({
      sessionId,
      participantId: 'p',
      role: 'doctor',
      expiresAt,
    });
    standIn.join(token);
    standIn.forgetSessions();
    // Another copy of the service, which has not seen the session yet.
    const other = createOpenViduProvider({
      url: standIn.url,
      secret: SECRET,
      timeoutMs: TIMEOUT_MS,
    });
    let error: DomainError | undefined;
    expect(
      await requestsDuring(async () => {
        error = await rejection(other.recording!.start(sessionId));
      }),
    ).toEqual(['GET /openvidu/api/sessions 200', 'POST /openvidu/api/recordings/start 404']);
    expect(error?.code).toBe('failed_precondition');
    expect(error?.message).toMatch(/session is closed/);
    expect(standIn.session(sessionId)).toBeUndefined();
  });

  it('says clearly when the server has recording turned off (501)', async () => {
    const off = await startOpenViduStandIn({ secret: SECRET, recordingEnabled: false });
    try {
      const p = createOpenViduProvider({ url: off.url, secret: SECRET, timeoutMs: TIMEOUT_MS });
      const { sessionId } = await p.ensureSession(randomUUID());
      const { token } = await p.issueToken({
        sessionId,
        participantId: 'p',
        role: 'doctor',
        expiresAt,
      });
      off.join(token);
      const error = await rejection(p.recording!.start(sessionId));
      expect(error.code).toBe('failed_precondition');
      expect(error.message).toMatch(/recording is disabled/);
    } finally {
      await off.close();
    }
  });
});

describe('failures', () => {
  it('answers UNAVAILABLE within the timeout when OpenVidu is slow', async () => {
    standIn.delay(TIMEOUT_MS * 4);
    const started = performance.now();
    const error = await rejection(provider.ensureSession(randomUUID()));
    expect(error.code).toBe('unavailable');
    expect(error.message).toMatch(new RegExp(`no answer within ${TIMEOUT_MS} ms`));
    expect(performance.now() - started).toBeLessThan(TIMEOUT_MS * 3);
    expect((await provider.health()).healthy).toBe(false);
  });

  it('answers UNAVAILABLE with the status when OpenVidu fails, or nothing when it is unreachable', async () => {
    standIn.failWith(503);
    expect((await rejection(provider.ensureSession(randomUUID()))).message).toMatch(/HTTP 503/);
    expect(await provider.health()).toMatchObject({ healthy: false, detail: /HTTP 503/ });
    standIn.failWith('reset');
    const unreachable = await rejection(provider.ensureSession(randomUUID()));
    expect(unreachable.code).toBe('unavailable');
    expect(unreachable.message).toMatch(/no answer/);
  });

  it('says when the secret is wrong, and is healthy with the right one', async () => {
    const wrong = createOpenViduProvider({ url: standIn.url, secret: 'wrong', timeoutMs: 1000 });
    const error = await rejection(wrong.ensureSession(randomUUID()));
    expect(error.message).toMatch(/401.*secret/);
    expect(await wrong.health()).toMatchObject({ healthy: false, detail: /refused the secret/ });
    expect(await provider.health()).toMatchObject({ healthy: true, detail: /OpenVidu 2\.32/ });
  });
});
