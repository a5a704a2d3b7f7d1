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
