import { Code, ConnectError } from '@connectrpc/connect';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';
import { videoClient } from '../support/clients.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ RATE_LIMIT_REQUESTS: '5', RATE_LIMIT_WINDOW_SECONDS: '60' });
});
afterAll(async () => {
  await t?.stop();
});

it('limits each caller on its own, with a retry hint', async () => {
  const noisy = videoClient(t.baseUrl, t.token('doctor', 'doc-noisy'));
  for (let i = 0; i < 5; i++) await noisy.getProviderStatus({});
  const error = await noisy.getProviderStatus({}).then(
    () => undefined,
    (e: unknown) => ConnectError.from(e),
  );
  expect(error?.code).toBe(Code.ResourceExhausted);
  expect(Number(error?.metadata.get('retry-after'))).toBeGreaterThan(0);
  expect(error?.rawMessage).toMatch(/retry in \d+s/);

  // Another caller, and the health endpoints, are not affected.
  await expect(
    videoClient(t.baseUrl, t.token('doctor', 'doc-quiet')).getProviderStatus({}),
  ).resolves.toBeDefined();
  expect((await fetch(`${t.baseUrl}/readyz`)).status).toBe(200);
});
