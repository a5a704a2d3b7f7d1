import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { OpenVidu, OpenViduRole } from 'openvidu-node-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type OpenViduStandIn,
  startOpenViduStandIn,
  type WebhookEvent,
} from '../support/openvidu-standin.js';

/**
 * The stand-in OpenVidu 2 server (test/support/openvidu-standin.ts) driven by the real
 * `openvidu-node-client`: whatever the service's tests learn from the stand-in holds for
 * the client the service uses. The client rejects an HTTP error as Error("<status>").
 * The behaviours checked here are listed, with their sources, in openvidu-standin.md.
 */
const SECRET = 'stand-in-secret';
/** OPENVIDU_RECORDING_AUTOSTOP_TIMEOUT, short: 120 s by default. */
const AUTOSTOP_MS = 300;

let standIn: OpenViduStandIn;
let ov: OpenVidu;

beforeAll(async () => {
  standIn = await startOpenViduStandIn({ secret: SECRET, recordingAutostopTimeoutMs: AUTOSTOP_MS });
  ov = new OpenVidu(standIn.url, SECRET);
  ov.enableProdMode(); // the client logs every fetch otherwise
});
afterAll(async () => {
  await standIn?.close();
});

/** A custom session id of this test's own. */
const sessionName = (what: string) => `${what}_${randomBytes(4).toString('hex')}`;

/** The requests the stand-in saw from now on. */
function requestsFrom(mark: number) {
  return standIn.requests.slice(mark);
}

/** A raw call to the stand-in's REST API, for what the client does not expose. */
async function api(method: string, path: string, body?: unknown, server = standIn) {
  const response = await fetch(`${server.url}/openvidu/api${path}`, {
    method,
    headers: {
      authorization: `Basic ${Buffer.from(`OPENVIDUAPP:${SECRET}`).toString('base64')}`,
      'content-type': 'application/json',
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return {
    status: response.status,
    json: text ? (JSON.parse(text) as Record<string, unknown>) : undefined,
  };
}

const eventsOf = (sessionId: string) => standIn.events.filter((e) => e.sessionId === sessionId);

async function until(done: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('sessions and connections', () => {
  it('creates a session under a custom id; a second create (409) resolves to it through fetch', async () => {
    const id = sessionName('create');
    const mark = standIn.requests.length;

    const session = await ov.createSession({ customSessionId: id });
    const again = await ov.createSession({ customSessionId: id });

    expect(session.sessionId).toBe(id);
    expect(again.sessionId).toBe(id);
    expect(again.createdAt).toBe(session.createdAt);
    expect(requestsFrom(mark)).toEqual([
      { method: 'POST', path: '/openvidu/api/sessions', status: 200 },
      { method: 'POST', path: '/openvidu/api/sessions', status: 409 },
      { method: 'GET', path: `/openvidu/api/sessions/${id}?pendingConnections=true`, status: 200 },
    ]);
    expect(eventsOf(id).map((e) => e.event)).toEqual(['sessionCreated']);
  });

  it('creates a connection with its role and data, and a token as OpenVidu shapes it', async () => {
    const id = sessionName('connection');
    const session = await ov.createSession({ customSessionId: id });

    const connection = await session.createConnection({
      role: OpenViduRole.MODERATOR,
      data: '{"participantId":"p-1"}',
    });

    expect(connection.connectionId).toMatch(/^con_[A-Z][A-Za-z0-9]{9}$/);
    expect(connection.status).toBe('pending');
    expect(connection.role).toBe(OpenViduRole.MODERATOR);
    expect(connection.serverData).toBe('{"participantId":"p-1"}');
    const host = new URL(standIn.url).host;
    expect(connection.token).toMatch(
      new RegExp(
        `^ws://${host.replaceAll('.', '\\.')}\\?sessionId=${id}&token=tok_[A-Za-z0-9]{16}$`,
      ),
    );
  });

  it('shows a joined participant as active, with activeAt, after session.fetch()', async () => {
    const id = sessionName('join');
    const session = await ov.createSession({ customSessionId: id });
    const connection = await session.createConnection({ data: 'patient' });
    await session.createConnection({ data: 'still pending' });
    const at = Date.now() - 5_000;

    const connectionId = standIn.join(connection.token, { at, platform: 'Firefox 128 on Linux' });
    await session.fetch();

    expect(connectionId).toBe(connection.connectionId);
    expect(session.connections).toHaveLength(2);
    expect(session.activeConnections).toHaveLength(1);
    expect(session.activeConnections[0]).toMatchObject({
      connectionId,
      status: 'active',
      activeAt: at,
      platform: 'Firefox 128 on Linux',
      serverData: 'patient',
    });
    expect(eventsOf(id).at(-1)).toEqual({
      event: 'participantJoined',
      sessionId: id,
      timestamp: at,
      connectionId,
      location: 'unknown',
      ip: '127.0.0.1',
      platform: 'Firefox 128 on Linux',
      clientData: '',
      serverData: 'patient',
    });
    // Without pendingConnections=true only the active connection is listed.
    const plain = await api('GET', `/sessions/${id}`);
    expect(plain.json?.connections).toMatchObject({ numberOfElements: 1 });
    expect(() => standIn.join(connection.token)).toThrow();
  });

  it('answers 404 once OpenVidu forgot its sessions', async () => {
    const session = await ov.createSession({ customSessionId: sessionName('forgotten') });
    standIn.forgetSessions();
    await expect(session.createConnection({})).rejects.toThrow(new Error('404'));
  });

  it('refuses a wrong secret with 401', async () => {
    const intruder = new OpenVidu(standIn.url, 'not-the-secret');
    await expect(intruder.createSession()).rejects.toThrow(new Error('401'));
    expect(standIn.requests.at(-1)).toMatchObject({ status: 401 });
  });

  it('answers the documented statuses, with empty bodies but for problems in the body', async () => {
    const id = sessionName('statuses');
    const badId = await api('POST', '/sessions', { customSessionId: 'has space' });
    expect(badId.status).toBe(400);
    // openvidu-server's error JSON, only for a problem with the request body.
    expect(badId.json).toMatchObject({
      status: 400,
      error: 'Bad Request',
      path: '/openvidu/api/sessions',
    });
    expect((await api('POST', '/sessions', { mediaMode: 'NOT_EXISTS' })).status).toBe(400);
    expect((await api('POST', '/sessions', { recordingMode: false })).status).toBe(400);
    const created = await api('POST', '/sessions', { customSessionId: id });
    expect(created.status).toBe(200);
    expect(await api('POST', '/sessions', { customSessionId: id })).toEqual({
      status: 409,
      json: undefined,
    });
    const generated = await api('POST', '/sessions', {});
    expect(generated.json?.id).toMatch(/^ses_[A-Z][A-Za-z0-9]{9}$/);
    expect((await api('POST', `/sessions/${id}/connection`, { role: 'OWNER' })).status).toBe(400);
    expect((await api('POST', `/sessions/${id}/connection`, { type: 'SIP' })).status).toBe(400);
    for (const [method, path] of [
      ['POST', '/sessions/nope/connection'],
      ['GET', '/sessions/nope'],
      ['DELETE', '/sessions/nope'],
      ['GET', '/recordings/nope'],
      ['POST', '/recordings/stop/nope'],
    ] as const) {
      expect(await api(method, path, method === 'POST' ? {} : undefined)).toEqual({
        status: 404,
        json: undefined,
      });
    }
    const config = await api('GET', '/config');
    expect(config.json).toMatchObject({
      VERSION: '2.32.0',
      OPENVIDU_RECORDING: true,
      OPENVIDU_RECORDING_AUTOSTOP_TIMEOUT: AUTOSTOP_MS / 1000,
    });
  });

  it('closes a session at once when its last participant leaves and nothing records it', async () => {
    const id = sessionName('leave');
    const session = await ov.createSession({ customSessionId: id });
    const first = standIn.join((await session.createConnection({})).token);
    const second = standIn.join((await session.createConnection({})).token);

    standIn.leave(first, { reason: 'networkDisconnect' });
    expect(standIn.session(id)).toBeDefined();
    standIn.leave(second);

    expect(standIn.session(id)).toBeUndefined();
    expect(eventsOf(id).map((e) => [e.event, e.reason])).toEqual([
      ['sessionCreated', undefined],
      ['participantJoined', undefined],
      ['participantJoined', undefined],
      ['participantLeft', 'networkDisconnect'],
      ['participantLeft', 'disconnect'],
      ['sessionDestroyed', 'lastParticipantLeft'],
    ]);
  });
});

describe('the automatic stop of recordings', () => {
  /** A recorded session whose one participant has just left. */
  async function abandonedRecording(what: string) {
    const id = sessionName(what);
    const session = await ov.createSession({ customSessionId: id });
    const connectionId = standIn.join((await session.createConnection({})).token);
    const recording = await ov.startRecording(id);
    const leftAt = Date.now();
    standIn.leave(connectionId);
    return { id, session, recording, leftAt };
  }

  it('keeps a recorded session open for the timeout, then stops the recording and closes it', async () => {
    const { id, recording, leftAt } = await abandonedRecording('autostop');
    expect(standIn.session(id)).toMatchObject({
      recording: true,
      connections: { numberOfElements: 0 },
    });
    expect(eventsOf(id).at(-1)).toMatchObject({ event: 'participantLeft', reason: 'disconnect' });

    await until(() => standIn.session(id) === undefined);
    expect(Date.now() - leftAt).toBeGreaterThanOrEqual(AUTOSTOP_MS);
    expect(
      eventsOf(id)
        .slice(-3)
        .map((e) => [e.event, e.status, e.reason]),
    ).toEqual([
      ['recordingStatusChanged', 'stopped', 'automaticStop'],
      ['recordingStatusChanged', 'ready', 'automaticStop'],
      ['sessionDestroyed', undefined, 'automaticStop'],
    ]);
    expect(await ov.getRecording(recording.id)).toMatchObject({
      status: 'ready',
      url: `${standIn.url}/openvidu/recordings/${id}/${id}.mp4`,
    });
  });

  it('goes on recording when someone joins within the timeout', async () => {
    const { id, session } = await abandonedRecording('rejoin');
    standIn.join((await session.createConnection({})).token);
    await new Promise((resolve) => setTimeout(resolve, AUTOSTOP_MS * 2));
    expect(standIn.session(id)).toMatchObject({ recording: true });
    expect(eventsOf(id).at(-1)).toMatchObject({ event: 'participantJoined' });
  });

  it('closes the session when the recording is stopped during the timeout', async () => {
    const { id, recording } = await abandonedRecording('stop-in-timeout');
    expect(await ov.stopRecording(recording.id)).toMatchObject({ status: 'ready' });
    expect(standIn.session(id)).toBeUndefined();
    expect(eventsOf(id).at(-1)).toMatchObject({
      event: 'sessionDestroyed',
      reason: 'recordingStoppedByServer',
    });
  });
});

describe('recordings', () => {
  it('starts only with someone connected, once at a time, stops, and becomes ready', async () => {
    const id = sessionName('record');
    const session = await ov.createSession({ customSessionId: id });
    await expect(ov.startRecording(id)).rejects.toThrow(new Error('406'));

    standIn.join((await session.createConnection({ role: OpenViduRole.PUBLISHER })).token);
    const recording = await ov.startRecording(id, { name: 'consult' });
    expect(recording).toMatchObject({ id, sessionId: id, status: 'started', url: null });
    await expect(ov.startRecording(id)).rejects.toThrow(new Error('409'));

    // OpenVidu CE processes the file before it answers: `ready`, with its url.
    const url = `${standIn.url}/openvidu/recordings/${id}/consult.mp4`;
    const stopped = await ov.stopRecording(recording.id);
    expect(stopped).toMatchObject({ id, status: 'ready', url });
    expect(stopped.duration).toBeGreaterThanOrEqual(0);
    expect(stopped.size).toBeGreaterThan(0);
    expect(await ov.getRecording(id)).toMatchObject({ status: 'ready', url });
    await expect(ov.stopRecording(recording.id)).rejects.toThrow(new Error('404'));

    const next = await ov.startRecording(id);
    expect(next.id).toBe(`${id}~1`);
    await expect(ov.stopRecording('no-such-recording')).rejects.toThrow(new Error('404'));
    const changes = eventsOf(id).filter((e) => e.event === 'recordingStatusChanged');
    expect(changes.map((e) => [e.status, e.reason])).toEqual([
      ['started', undefined],
      ['stopped', 'recordingStoppedByServer'],
      ['ready', 'recordingStoppedByServer'],
      ['started', undefined],
    ]);
    for (const change of changes) expect(change).not.toHaveProperty('url');
  });

  it('checks the documented ranges: frameRate from 0 to 120 (422 outside, with the error JSON)', async () => {
    const id = sessionName('ranges');
    const session = await ov.createSession({ customSessionId: id });
    standIn.join((await session.createConnection({})).token);
    const tooFast = await api('POST', '/recordings/start', { session: id, frameRate: 121 });
    expect(tooFast.status).toBe(422);
    expect(tooFast.json).toMatchObject({
      status: 422,
      message: expect.stringMatching(/frameRate/),
    });
    const silent = await api('POST', '/recordings/start', {
      session: id,
      hasAudio: false,
      hasVideo: false,
    });
    expect(silent.status).toBe(422);
    const still = await api('POST', '/recordings/start', { session: id, frameRate: 0 });
    expect(still.status).toBe(200);
    expect(still.json).toMatchObject({ frameRate: 0, status: 'started' });
  });

  it('answers 501 when recording is disabled', async () => {
    const disabled = await startOpenViduStandIn({ secret: SECRET, recordingEnabled: false });
    try {
      const client = new OpenVidu(disabled.url, SECRET);
      const id = sessionName('disabled');
      const session = await client.createSession({ customSessionId: id });
      disabled.join((await session.createConnection({})).token);
      await expect(client.startRecording(id)).rejects.toThrow(new Error('501'));
      await expect(client.listRecordings()).rejects.toThrow(new Error('501'));
      // Unless a test says otherwise, OpenVidu's default autostop timeout: 120 s.
      expect((await api('GET', '/config', undefined, disabled)).json).toMatchObject({
        OPENVIDU_RECORDING: false,
        OPENVIDU_RECORDING_AUTOSTOP_TIMEOUT: 120,
      });
    } finally {
      await disabled.close();
    }
  });
});

describe('failures and slowness', () => {
  it('answers every call with the status given to failWith, until cleared', async () => {
    standIn.failWith(503);
    try {
      await expect(ov.createSession()).rejects.toThrow(new Error('503'));
      await expect(ov.listRecordings()).rejects.toThrow(new Error('503'));
      expect(standIn.requests.at(-1)).toMatchObject({ status: 503 });
      standIn.failWith('reset');
      await expect(ov.createSession()).rejects.toThrow();
      expect(standIn.requests.at(-1)).toMatchObject({ status: 0 });
    } finally {
      standIn.failWith(undefined);
    }
    await expect(ov.createSession()).resolves.toBeDefined();
  });

  it('makes every answer wait for the delay', async () => {
    const delayMs = 300;
    standIn.delay(delayMs);
    try {
      const started = performance.now();
      await ov.createSession();
      expect(performance.now() - started).toBeGreaterThanOrEqual(delayMs);
    } finally {
      standIn.delay(0);
    }
  });
});

describe('webhooks', () => {
  interface Received {
    readonly headers: IncomingHttpHeaders;
    readonly body: WebhookEvent;
  }

  /** A webhook endpoint as the service would run one: answers 200, keeps what it got. */
  async function startReceiver() {
    const received: Received[] = [];
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as WebhookEvent;
        received.push({ headers: req.headers, body });
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    return {
      url: `http://127.0.0.1:${port}/webhook`,
      received,
      async waitFor(predicate: (all: Received[]) => boolean, timeoutMs = 5_000) {
        const deadline = Date.now() + timeoutMs;
        while (!predicate(received)) {
          if (Date.now() > deadline) throw new Error(`timed out with ${received.length} webhooks`);
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        return received;
      },
      stop: () =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    };
  }

  it('closing a session answers 204 and posts participantLeft and sessionDestroyed', async () => {
    const receiver = await startReceiver();
    standIn.configureWebhook({
      url: receiver.url,
      headers: { Authorization: 'Bearer webhook-secret' },
      autoDeliver: true,
    });
    try {
      const id = sessionName('webhook');
      const session = await ov.createSession({ customSessionId: id });
      const connectionId = standIn.join((await session.createConnection({ data: 'doctor' })).token);
      const mark = standIn.requests.length;

      await session.close();

      expect(requestsFrom(mark)).toEqual([
        { method: 'DELETE', path: `/openvidu/api/sessions/${id}`, status: 204 },
      ]);
      const mine = (all: Received[]) => all.filter((r) => r.body.sessionId === id);
      await receiver.waitFor((all) => mine(all).some((r) => r.body.event === 'sessionDestroyed'));
      const posted = mine(receiver.received);
      expect(posted.map((r) => r.body.event)).toEqual([
        'sessionCreated',
        'participantJoined',
        'participantLeft',
        'sessionDestroyed',
      ]);
      const [, joined, left, destroyed] = posted.map((r) => r.body);
      expect(left).toMatchObject({
        connectionId,
        reason: 'sessionClosedByServer',
        startTime: joined?.timestamp,
        serverData: 'doctor',
      });
      expect(left?.duration).toEqual(expect.any(Number));
      expect(destroyed).toMatchObject({
        reason: 'sessionClosedByServer',
        startTime: expect.any(Number),
      });
      for (const { headers } of posted) {
        expect(headers.authorization).toBe('Bearer webhook-secret');
        expect(headers['content-type']).toBe('application/json');
      }
    } finally {
      standIn.configureWebhook(undefined);
      await receiver.stop();
    }
  });

  it('with autoDeliver off only records events; deliver() posts one and answers the status', async () => {
    const receiver = await startReceiver();
    standIn.configureWebhook({ url: receiver.url, headers: {}, autoDeliver: false });
    try {
      const session = await ov.createSession({ customSessionId: sessionName('manual') });
      const created = eventsOf(session.sessionId)[0];
      expect(created?.event).toBe('sessionCreated');
      expect(await standIn.deliver(created!)).toBe(200);
      expect(receiver.received.map((r) => r.body)).toEqual([created]);
    } finally {
      standIn.configureWebhook(undefined);
      await receiver.stop();
    }
  });
});
