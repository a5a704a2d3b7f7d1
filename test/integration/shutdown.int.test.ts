import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConnectError, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { expect, it } from 'vitest';
import { Health, HealthCheckResponse_ServingStatus } from '../../gen/grpc/health/v1/health_pb.js';
import { ConsultationStatus, Provider } from '../../gen/video/v1/consultation_pb.js';
import type { StartConsultationResponse } from '../../gen/video/v1/video_service_pb.js';
import { providerSessionName } from '../../src/providers/session-name.js';
import { startTestApp } from '../support/app.js';
import { appointmentId, slot, videoClient } from '../support/clients.js';
import { startOpenViduStandIn } from '../support/openvidu-standin.js';

const OPENVIDU_SECRET = 'shutdown-openvidu-secret';
/** Calls in flight when the service is told to stop. */
const IN_FLIGHT = 5;

/**
 * OpenVidu behind a gate the test shuts and opens: while shut, session creations wait
 * there (counted), and every request goes on to the stand-in once it is open.
 */
async function startGate(target: string) {
  let shut = false;
  const held: (() => void)[] = [];
  let arrived: (() => void) | undefined;
  const server = http.createServer((req, res) => {
    const forward = () => {
      const upstream = http.request(
        new URL(req.url ?? '/', target),
        { method: req.method, headers: req.headers },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      upstream.on('error', (error) => res.destroy(error));
      req.pipe(upstream);
    };
    const path = new URL(req.url ?? '/', 'http://gate').pathname;
    if (shut && req.method === 'POST' && path === '/openvidu/api/sessions') {
      held.push(forward);
      arrived?.();
    } else {
      forward();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    shut() {
      shut = true;
    },
    /** Resolves once `count` requests wait at the gate. */
    holding: (count: number) =>
      new Promise<void>((resolve) => {
        arrived = () => {
          if (held.length >= count) resolve();
        };
        arrived();
      }),
    open() {
      shut = false;
      for (const forward of held.splice(0)) forward();
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * Stopping the service: calls already running finish, long-lived streams are told and
 * closed, new connections are refused, and stop() returns well inside its deadline.
 */
it('drains in-flight calls and closes streams on stop', async () => {
  const standIn = await startOpenViduStandIn({ secret: OPENVIDU_SECRET });
  const gate = await startGate(standIn.url);
  const t = await startTestApp({
    SHUTDOWN_TIMEOUT_MS: '5000',
    OPENVIDU_URL: gate.url,
    OPENVIDU_SECRET,
    PROVIDER_DEFAULT: 'openvidu',
  });
  let stopping: Promise<void> | undefined;
  try {
    const service = videoClient(t.baseUrl, t.token('service', 'svc'));
    const doctor = videoClient(t.baseUrl, t.token('doctor', 'doc-s'));
    const ids: string[] = [];
    for (let i = 0; i < IN_FLIGHT; i++) {
      const { consultation } = await service.scheduleConsultation({
        appointmentId: appointmentId(`drain-${i}`),
        doctorId: 'doc-s',
        patientId: 'pat-s',
        ...slot(5),
      });
      ids.push(consultation!.id);
    }

    const health = createClient(Health, createGrpcTransport({ baseUrl: t.baseUrl }));
    const watch = health.watch({ service: '' })[Symbol.asyncIterator]();
    expect((await watch.next()).value?.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    /** What the stream said until it ended, or how it failed. */
    const watchEnded = (async () => {
      const seen: HealthCheckResponse_ServingStatus[] = [];
      for (let next = await watch.next(); !next.done; next = await watch.next()) {
        seen.push(next.value.status);
      }
      return seen;
    })().catch((error: unknown) => ConnectError.from(error));

    // Each start creates its OpenVidu session, which the gate holds: once it holds them
    // all, every call is inside its handler, past reading its request.
    gate.shut();
    // A call cut off by the server may never settle on the client: bounded, it fails.
    const inFlight = ids.map((consultationId) =>
      doctor.startConsultation({ consultationId }, { timeoutMs: 10_000 }).then(
        (answer) => answer,
        (error: unknown) => ConnectError.from(error),
      ),
    );
    let held = false;
    await Promise.race([
      gate.holding(IN_FLIGHT).then(() => {
        held = true;
      }),
      Promise.race(inFlight).then((answer) => {
        if (!held) throw new Error(`a call ended before it reached OpenVidu: ${String(answer)}`);
      }),
    ]);
    const stopBegan = Date.now();
    // Draining begins before stop() first waits: the gate opens on a service that stops.
    stopping = t.stop();
    gate.open();
    await stopping;
    const stopMs = Date.now() - stopBegan;

    const answers = await Promise.all(inFlight);
    answers.forEach((answer, i) => {
      expect(answer, `call ${i}: ${String(answer)}`).not.toBeInstanceOf(ConnectError);
      const { consultation, started } = answer as StartConsultationResponse;
      expect(started).toBe(true);
      expect(consultation).toMatchObject({
        id: ids[i],
        status: ConsultationStatus.IN_PROGRESS,
        provider: Provider.OPENVIDU,
        providerSessionId: providerSessionName(ids[i]!),
      });
    });
    // The stream is told, and ends cleanly rather than being cut.
    const watched = await watchEnded;
    expect(watched, String(watched)).not.toBeInstanceOf(ConnectError);
    expect((watched as HealthCheckResponse_ServingStatus[]).at(-1)).toBe(
      HealthCheckResponse_ServingStatus.NOT_SERVING,
    );
    expect(stopMs).toBeLessThan(5000);
    await expect(fetch(`${t.baseUrl}/healthz`)).rejects.toThrow();
  } finally {
    await (stopping ?? t.stop());
    await gate.close();
    await standIn.close();
  }
});

/**
 * The process itself, as an orchestrator stops it: SIGTERM while a request is still being
 * received and Kafka answers nothing (a broker that accepts connections and never
 * replies). The exit comes within SHUTDOWN_TIMEOUT_MS (and the hard-exit margin).
 */
it('exits within SHUTDOWN_TIMEOUT_MS even when calls and Kafka hang', async () => {
  const blackhole = net.createServer((socket) => socket.on('error', () => {}));
  await new Promise<void>((resolve) => blackhole.listen(0, '127.0.0.1', resolve));
  const brokerPort = (blackhole.address() as net.AddressInfo).port;
  const dataDir = await mkdtemp(join(tmpdir(), 'video-service-exit-'));
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    env: {
      ...process.env,
      NODE_ENV: 'test',
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_LEVEL: 'info',
      DATA_DIR: dataDir,
      DATABASE_URL: '',
      KAFKA_BROKERS: `127.0.0.1:${brokerPort}`,
      SHUTDOWN_TIMEOUT_MS: '2000',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      let log = '';
      child.stdout.on('data', (chunk: Buffer) => {
        log += chunk.toString();
        const found = /"port":(\d+)[^\n]*"msg":"listening"/.exec(log);
        if (found) resolve(Number(found[1]));
      });
      child.once('exit', (code) => reject(new Error(`exited early (${code}):\n${log}`)));
    });
    // A request whose body never finishes: it keeps the server draining to the deadline.
    // It asks for 100 Continue, which the server sends once it has taken the request in.
    const hanging = net.connect(port, '127.0.0.1');
    hanging.on('error', () => {});
    const received = new Promise<void>((resolve) => {
      let answer = '';
      hanging.on('data', (chunk: Buffer) => {
        answer += chunk.toString('latin1');
        if (answer.startsWith('HTTP/1.1 100 Continue\r\n\r\n')) resolve();
      });
    });
    hanging.write(
      'POST /api/video/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50\r\nExpect: 100-continue\r\n\r\n{',
    );
    await received;
    const signalled = Date.now();
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    const exitMs = Date.now() - signalled;
    hanging.destroy();
    expect(exitMs).toBeLessThan(2000 + 1000 + 500);
    expect(code).not.toBeNull();
  } finally {
    child.kill('SIGKILL');
    blackhole.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}, 60_000);

it('stops at once, not at its deadline, when a client holds a connection it has sent nothing on', async () => {
  // Browsers open a spare connection ahead of need; nothing is in flight on it.
  const app = await startTestApp({ SHUTDOWN_TIMEOUT_MS: '5000' });
  const spare = net.connect(app.app.port, '127.0.0.1');
  await new Promise<void>((resolve) => spare.once('connect', () => resolve()));
  const closed = new Promise<void>((resolve) => spare.once('close', () => resolve()));
  const started = Date.now();
  await app.stop();
  expect(Date.now() - started).toBeLessThan(2_000);
  await closed;
});
