import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { expect, it } from 'vitest';
import { Health, HealthCheckResponse_ServingStatus } from '../../gen/grpc/health/v1/health_pb.js';
import { startTestApp } from '../support/app.js';
import { appointmentId, slot, videoClient } from '../support/clients.js';

/**
 * Stopping the service: calls already running finish, long-lived streams are told and
 * closed, new connections are refused, and stop() returns well inside its deadline.
 */
it('drains in-flight calls and closes streams on stop', async () => {
  const t = await startTestApp({ SHUTDOWN_TIMEOUT_MS: '5000' });
  const service = videoClient(t.baseUrl, t.token('service', 'svc'));
  // One call first, so the HTTP/2 session is up and later calls are already on the wire.
  await service.getProviderStatus({});

  const health = createClient(Health, createGrpcTransport({ baseUrl: t.baseUrl }));
  const watch = health.watch({ service: '' });
  const first = await watch[Symbol.asyncIterator]().next();
  expect(first.value?.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
  const watchEnded = (async () => {
    const seen: HealthCheckResponse_ServingStatus[] = [];
    try {
      for await (const res of watch) seen.push(res.status);
    } catch {
      // The stream may end with an error code when the server goes away; both are fine.
    }
    return seen;
  })();

  const inFlight = Array.from({ length: 10 }, (_, i) =>
    service.scheduleConsultation({
      appointmentId: appointmentId(`drain-${i}`),
      doctorId: 'doc-s',
      patientId: 'pat-s',
      ...slot(60),
    }),
  );
  // Let the requests reach the server before it starts to drain.
  await new Promise((resolve) => setTimeout(resolve, 20));
  const started = Date.now();
  await t.stop();
  const stopMs = Date.now() - started;

  const results = await Promise.allSettled(inFlight);
  expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(10);
  await watchEnded;
  expect(stopMs).toBeLessThan(5000);
  await expect(fetch(`${t.baseUrl}/healthz`)).rejects.toThrow();
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
    const hanging = net.connect(port, '127.0.0.1');
    hanging.on('error', () => {});
    hanging.write(
      'POST /api/video/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n{',
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
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
