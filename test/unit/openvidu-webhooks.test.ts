import { describe, expect, it } from 'vitest';
import {
  createOpenViduWebhookReceiver,
  normalizeOpenViduReason,
  parseOpenViduWebhook,
} from '../../src/http/openvidu-webhooks.js';
import { createLogger } from '../../src/logger.js';
import type { Attendance } from '../../src/video/attendance.js';

/** Webhook bodies as OpenVidu 2 sends them (reference-docs/openvidu-server-webhook). */
const joined = {
  event: 'participantJoined',
  sessionId: 'vc_abc',
  uniqueSessionId: 'vc_abc_1700000000000',
  timestamp: 1_700_000_100_000,
  connectionId: 'con_1',
  location: 'unknown',
  ip: '127.0.0.1',
  platform: 'Chrome',
  clientData: '',
  serverData: '{"participantId":"p-1"}',
};
const left = {
  ...joined,
  event: 'participantLeft',
  timestamp: 1_700_000_400_000,
  startTime: 1_700_000_100_000,
  duration: 300,
  reason: 'networkDisconnect',
};

describe('OpenVidu webhooks', () => {
  it('reads joins and leaves with the opaque participant id and a normalized reason', () => {
    expect(parseOpenViduWebhook(joined)).toMatchObject({
      connection: {
        provider: 'openvidu',
        sessionId: 'vc_abc',
        connectionId: 'con_1',
        participantId: 'p-1',
        kind: 'joined',
        at: new Date(1_700_000_100_000),
      },
    });
    expect(parseOpenViduWebhook(left)).toMatchObject({
      connection: { kind: 'left', reason: 'network', joinedAt: new Date(1_700_000_100_000) },
    });
    expect(parseOpenViduWebhook({ ...joined, event: 'sessionDestroyed' })).toMatchObject({
      sessionClosed: { sessionId: 'vc_abc' },
    });
    expect(parseOpenViduWebhook({ ...joined, event: 'webrtcConnectionCreated' })).toBeUndefined();
    expect(
      parseOpenViduWebhook({
        event: 'recordingStatusChanged',
        sessionId: 'vc_abc',
        timestamp: 1_700_000_500_000,
        id: 'vc_abc~1',
        status: 'ready',
        url: 'https://openvidu.example.test/openvidu/recordings/vc_abc~1/vc_abc~1.mp4',
      }),
    ).toMatchObject({
      recording: { recordingId: 'vc_abc~1', status: 'ready', url: expect.stringMatching(/\.mp4$/) },
    });
    expect(parseOpenViduWebhook('garbage')).toBeUndefined();
  });

  it('gives one id to a repeated webhook and another to a different one', () => {
    const id = (e: object) => {
      const parsed = parseOpenViduWebhook(e);
      return parsed && 'connection' in parsed ? parsed.connection.eventId : undefined;
    };
    expect(id(joined)).toBe(id({ ...joined }));
    expect(id(joined)).not.toBe(id(left));
  });

  it('keeps apart the stopped and ready that OpenVidu CE sends together for one recording', () => {
    // As OpenVidu CE posts them when a recording stops: `stopped`, then at once `ready`.
    const stopped = {
      event: 'recordingStatusChanged',
      sessionId: 'vc_abc',
      timestamp: 1_700_000_500_000,
      startTime: 1_700_000_200_000,
      id: 'vc_abc',
      name: 'vc_abc',
      outputMode: 'COMPOSED',
      hasAudio: true,
      hasVideo: true,
      size: 0,
      duration: 0,
      reason: 'automaticStop',
      status: 'stopped',
    };
    const ready = { ...stopped, size: 75_000_000, duration: 300, status: 'ready' };
    const recording = (e: object) => {
      const parsed = parseOpenViduWebhook(e);
      return parsed && 'recording' in parsed ? parsed.recording : undefined;
    };
    expect(recording(stopped)).toMatchObject({ recordingId: 'vc_abc', status: 'stopped' });
    expect(recording(ready)).toMatchObject({
      recordingId: 'vc_abc',
      status: 'ready',
      url: undefined,
    });
    expect(recording(ready)?.eventId).not.toBe(recording(stopped)?.eventId);
    expect(recording({ ...ready })?.eventId).toBe(recording(ready)?.eventId);
    // The same second for another recording of the session is another event too.
    expect(recording({ ...ready, id: 'vc_abc~1' })?.eventId).not.toBe(recording(ready)?.eventId);
  });

  it('reads a session OpenVidu destroyed after the automatic stop of its recording', () => {
    const destroyed = {
      event: 'sessionDestroyed',
      sessionId: 'vc_abc',
      timestamp: 1_700_000_500_000,
      startTime: 1_700_000_000_000,
      duration: 500,
      reason: 'automaticStop',
    };
    expect(parseOpenViduWebhook(destroyed)).toEqual({
      sessionClosed: {
        eventId: expect.stringMatching(/^openvidu:/),
        provider: 'openvidu',
        sessionId: 'vc_abc',
        at: new Date(1_700_000_500_000),
      },
    });
  });

  it('maps every OpenVidu reason to the one vocabulary', () => {
    expect(normalizeOpenViduReason('disconnect')).toBe('left');
    expect(normalizeOpenViduReason('forceDisconnectByServer')).toBe('removed');
    expect(normalizeOpenViduReason('sessionClosedByServer')).toBe('session_closed');
    expect(normalizeOpenViduReason('openviduServerStopped')).toBe('provider_failure');
    expect(normalizeOpenViduReason('somethingNew')).toBe('unknown');
  });

  it('accepts only the configured secret, and answers before the work is done', async () => {
    const applied: string[] = [];
    const attendance = {
      recordConnection: async (e: { connectionId: string }) => {
        applied.push(e.connectionId);
        return 'applied' as const;
      },
      sessionClosed: async () => 'applied' as const,
    } as unknown as Attendance;
    const receiver = createOpenViduWebhookReceiver({
      secret: 'the-webhook-secret-value',
      headerName: 'X-Webhook-Secret',
      attendance,
      logger: createLogger('silent'),
    });
    const body = Buffer.from(JSON.stringify(joined));
    expect(receiver.receive({ headers: {}, body })).toBe(401);
    expect(receiver.receive({ headers: { 'x-webhook-secret': 'wrong' }, body })).toBe(401);
    const headers = { 'x-webhook-secret': 'the-webhook-secret-value' };
    expect(receiver.receive({ headers, body: Buffer.from('{not json') })).toBe(400);
    expect(receiver.receive({ headers, body })).toBe(200);
    await receiver.drain();
    expect(applied).toEqual(['con_1']);
  });
});
