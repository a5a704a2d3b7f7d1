import { generateKeyPairSync } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { describe, expect, it } from 'vitest';
import { createJaasProvider, createJitsiProvider } from '../../src/providers/jitsi-provider.js';
import { providerSessionName } from '../../src/providers/session-name.js';

const now = new Date('2026-03-01T10:00:00Z');
const clock = { now: () => now };
const expiresAt = new Date('2026-03-01T11:15:00Z');
const consultationId = '7d1f3a52-8c1e-4b7a-9d0e-2f6b5c4a3e21';
const roles = ['doctor', 'patient', 'observer'] as const;

/**
 * What every token must say in `context.features`, whoever holds it: Jitsi's own
 * recording, live streaming, transcription and dial-out off (string values, as JaaS
 * documents them; prosody and the web app allow a feature only for "true").
 */
const SWITCHED_OFF = {
  recording: 'false',
  livestreaming: 'false',
  transcription: 'false',
  'outbound-call': 'false',
  'sip-outbound-call': 'false',
};

describe('self-hosted Jitsi (prosody token auth)', () => {
  const provider = createJitsiProvider({
    domain: 'meet.example.test',
    appId: 'video-service',
    appSecret: 'a-jitsi-app-secret-for-tests',
    audience: 'jitsi',
    clock,
  });

  it('derives an opaque, stable, lower-case room from the consultation id', async () => {
    const { sessionId } = await provider.ensureSession(consultationId);
    expect(sessionId).toBe(providerSessionName(consultationId));
    expect(sessionId).toMatch(/^vc-[0-9a-f]{32}$/);
    expect(sessionId).not.toContain(consultationId.slice(0, 8));
    expect(providerSessionName(crypto.randomUUID())).not.toBe(sessionId);
  });

  it('signs every claim prosody checks, with string user fields and a moderator doctor', async () => {
    const { sessionId } = await provider.ensureSession(consultationId);
    const names = { doctor: 'Doctor', patient: 'Patient', observer: 'Observer' } as const;
    for (const role of ['doctor', 'patient', 'observer'] as const) {
      const credentials = await provider.issueToken({
        sessionId,
        participantId: `participant-${role}`,
        role,
        expiresAt,
      });
      const claims = jwt.verify(credentials.token, 'a-jitsi-app-secret-for-tests', {
        algorithms: ['HS256'],
        clockTimestamp: now.getTime() / 1000,
      }) as jwt.JwtPayload;
      expect(claims).toMatchObject({
        iss: 'video-service',
        aud: 'jitsi',
        sub: 'meet.example.test',
        room: sessionId,
        moderator: role === 'doctor',
        context: {
          user: {
            id: `participant-${role}`,
            name: names[role],
            moderator: String(role === 'doctor'),
          },
        },
      });
      for (const value of Object.values(claims.context.user)) expect(typeof value).toBe('string');
      // Prosody allows no clock skew: nbf lies a little in the past; exp is the request.
      expect(claims.nbf).toBe(now.getTime() / 1000 - 10);
      expect(claims.exp).toBe(expiresAt.getTime() / 1000);
      expect(credentials.expiresAt).toEqual(expiresAt);
      expect(credentials.joinUrl).toBe(
        `https://meet.example.test/${sessionId}?jwt=${credentials.token}`,
      );
    }
  });

  it('switches Jitsi recording, live streaming, transcription and dial-out off in every self-hosted token, the doctor’s too', async () => {
    const { sessionId } = await provider.ensureSession(consultationId);
    for (const role of roles) {
      const { token } = await provider.issueToken({
        sessionId,
        participantId: `participant-${role}`,
        role,
        expiresAt,
      });
      const claims = jwt.verify(token, 'a-jitsi-app-secret-for-tests', {
        algorithms: ['HS256'],
        clockTimestamp: now.getTime() / 1000,
      }) as jwt.JwtPayload;
      // Exactly these, so a feature switched back on (or "true" again) fails here.
      expect(claims.context.features).toStrictEqual(SWITCHED_OFF);
      // The doctor is a moderator; the features hold for moderators too.
      expect(claims.moderator).toBe(role === 'doctor');
    }
  });

  it('makes tokens that another secret cannot verify', async () => {
    const { token } = await provider.issueToken({
      sessionId: 'vc-room',
      participantId: 'p',
      role: 'patient',
      expiresAt,
    });
    expect(() => jwt.verify(token, 'some-other-secret', { algorithms: ['HS256'] })).toThrow(
      /signature/,
    );
  });

  it('has nothing to close and reports how it works', async () => {
    await expect(provider.endSession('vc-room')).resolves.toBeUndefined();
    expect(await provider.health()).toMatchObject({ healthy: true });
    expect(provider.recording).toBeUndefined();
  });
});

describe('Jitsi as a Service (8x8)', () => {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const tenant = 'vpaas-magic-cookie-0123456789abcdef0123456789abcdef';
  const provider = createJaasProvider({
    domain: '8x8.vc',
    appId: tenant,
    keyId: 'a1b2c3',
    privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    clock,
  });

  it('signs RS256 with the tenant-qualified kid and the claims JaaS expects', async () => {
    const { sessionId } = await provider.ensureSession(consultationId);
    const credentials = await provider.issueToken({
      sessionId,
      participantId: 'participant-doctor',
      role: 'doctor',
      expiresAt,
    });
    const decoded = jwt.decode(credentials.token, { complete: true })!;
    expect(decoded.header).toMatchObject({ alg: 'RS256', kid: `${tenant}/a1b2c3` });
    const claims = jwt.verify(credentials.token, publicKey, {
      algorithms: ['RS256'],
      clockTimestamp: now.getTime() / 1000,
    }) as jwt.JwtPayload;
    expect(claims).toMatchObject({
      aud: 'jitsi',
      iss: 'chat',
      sub: tenant,
      room: sessionId,
      context: {
        user: { id: 'participant-doctor', name: 'Doctor', moderator: 'true' },
        features: { recording: 'false', livestreaming: 'false' },
      },
    });
    expect(credentials.joinUrl).toBe(
      `https://8x8.vc/${tenant}/${sessionId}?jwt=${credentials.token}`,
    );
    const patient = await provider.issueToken({
      sessionId,
      participantId: 'participant-patient',
      role: 'patient',
      expiresAt,
    });
    expect((jwt.decode(patient.token) as jwt.JwtPayload).context.user.moderator).toBe('false');
  });

  it('switches Jitsi recording, live streaming, transcription and dial-out off in every JaaS token, the doctor’s too', async () => {
    const { sessionId } = await provider.ensureSession(consultationId);
    for (const role of roles) {
      const { token } = await provider.issueToken({
        sessionId,
        participantId: `participant-${role}`,
        role,
        expiresAt,
      });
      const claims = jwt.verify(token, publicKey, {
        algorithms: ['RS256'],
        clockTimestamp: now.getTime() / 1000,
      }) as jwt.JwtPayload;
      expect(claims.context.features).toStrictEqual(SWITCHED_OFF);
      expect(claims.context.user.moderator).toBe(String(role === 'doctor'));
    }
  });
});
