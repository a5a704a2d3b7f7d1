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
 */
const SECRET = 'stand-in-secret';

let standIn: OpenViduStandIn;
let ov: OpenVidu;

beforeAll(async () => {
  standIn = await startOpenViduStandIn({ secret: SECRET });
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
async function api(method: string, path: string, body?: unknown) {
  const response = await fetch(`${standIn.url}/openvidu/api${path}`, {
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
    expect(eventsOf(id).at(-1)).toMatchObject({
      event: 'participantJoined',
      timestamp: at,
      participantId: connectionId,
      connectionId,
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

  it('answers the documented statuses for bad requests', async () => {
    const id = sessionName('statuses');
    expect((await api('POST', '/sessions', { customSessionId: 'has space' })).status).toBe(400);
    expect((await api('POST', '/sessions', { mediaMode: 'NOT_EXISTS' })).status).toBe(400);
    expect((await api('POST', '/sessions', { recordingMode: false })).status).toBe(400);
    const created = await api('POST', '/sessions', { customSessionId: id });
    expect(created.status).toBe(200);
    const generated = await api('POST', '/sessions', {});
    expect(generated.json?.id).toMatch(/^ses_[A-Z][A-Za-z0-9]{9}$/);
    expect((await api('POST', `/sessions/${id}/connection`, { role: 'OWNER' })).status).toBe(400);
    expect((await api('POST', `/sessions/${id}/connection`, { type: 'SIP' })).status).toBe(400);
    expect((await api('POST', '/sessions/nope/connection', {})).status).toBe(404);
    expect((await api('GET', '/sessions/nope/connection/con_x')).status).toBe(400);
    expect((await api('GET', `/sessions/${id}/connection/con_x`)).status).toBe(404);
    expect((await api('DELETE', '/sessions/nope/connection/con_x')).status).toBe(400);
    expect((await api('DELETE', '/sessions/nope')).status).toBe(404);
    const error = await api('GET', '/sessions/nope');
    expect(error.json).toMatchObject({
      status: 404,
      error: 'Not Found',
      path: '/openvidu/api/sessions/nope',
    });
    const config = await api('GET', '/config');
    expect(config.json).toMatchObject({ VERSION: '2.32.0', OPENVIDU_RECORDING: true });
  });

  it('issues a token through the deprecated POST /tokens (generateToken)', async () => {
    const session = await ov.createSession({ customSessionId: sessionName('token') });
    const token = await session.generateToken({ role: OpenViduRole.SUBSCRIBER, data: 'viewer' });
    expect(token).toContain(`sessionId=${session.sessionId}&token=tok_`);
    await session.fetch();
    expect(session.connections[0]).toMatchObject({ role: 'SUBSCRIBER', status: 'pending' });
  });

  it('closes the session when its last participant leaves', async () => {
    const id = sessionName('leave');
    const session = await ov.createSession({ customSessionId: id });
    const first = standIn.join((await session.createConnection({})).token);
    const second = standIn.join((await session.createConnection({})).token);
    await ov.startRecording(id);

    standIn.leave(first, { reason: 'networkDisconnect' });
    expect(standIn.session(id)).toBeDefined();
    standIn.leave(second);

    expect(standIn.session(id)).toBeUndefined();
    expect(
      eventsOf(id)
        .slice(-4)
        .map((e) => [e.event, e.reason]),
    ).toEqual([
      ['participantLeft', 'networkDisconnect'],
      ['participantLeft', 'disconnect'],
      ['recordingStatusChanged', 'lastParticipantLeft'],
      ['sessionDestroyed', 'lastParticipantLeft'],
    ]);
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

    const stopped = await ov.stopRecording(recording.id);
    expect(stopped).toMatchObject({ id, status: 'stopped', url: null });
    expect((await ov.getRecording(id)).url).toBeNull();

    standIn.finishRecording(id);
    const ready = await ov.getRecording(id);
    expect(ready.status).toBe('ready');
    expect(ready.url).toBe(`${standIn.url}/openvidu/recordings/${id}/consult.mp4`);

    const next = await ov.startRecording(id);
    expect(next.id).toBe(`${id}~1`);
    await expect(ov.stopRecording('no-such-recording')).rejects.toThrow(new Error('404'));
    const changes = eventsOf(id).filter((e) => e.event === 'recordingStatusChanged');
    expect(changes.map((e) => e.status)).toEqual(['started', 'stopped', 'ready', 'started']);
    for (const change of changes) expect(change).not.toHaveProperty('url');
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
        participantId: connectionId,
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
