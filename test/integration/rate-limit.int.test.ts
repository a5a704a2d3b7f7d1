import { setTimeout } from 'node:timers/promises';
import { Code, ConnectError } from '@connectrpc/connect';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { STORE_RETRY_MS } from '../../src/rpc/rate-limit.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { codeOf, videoClient } from '../support/clients.js';
import {
  admin,
  createTestDatabase,
  serverForSeveralCopies,
  type TestDatabase,
} from '../support/database.js';

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

/**
 * Several copies behind one load balancer share the counts in the database
 * (RATE_LIMIT_STORE=postgres, the default with DATABASE_URL).
 */
describe.runIf(serverForSeveralCopies)('two copies on one database', () => {
  let database: TestDatabase;
  let copies: TestApp[] = [];
  const start = async (env: Record<string, string>): Promise<[TestApp, TestApp]> => {
    const pair: [TestApp, TestApp] = [
      await startTestApp(env, database),
      await startTestApp(env, database),
    ];
    copies = pair;
    return pair;
  };
  beforeEach(async () => {
    database = await createTestDatabase();
  });
  afterEach(async () => {
    await Promise.all(copies.map((copy) => copy.stop()));
    copies = [];
    await database.drop();
  });

  it('allow a caller the limit once in all, not once per copy, even at once', async () => {
    const [a, b] = await start({ RATE_LIMIT_REQUESTS: '6', RATE_LIMIT_WINDOW_SECONDS: '60' });
    const calls = Array.from({ length: 20 }, (_, i) => {
      const copy = i % 2 === 0 ? a : b;
      return codeOf(
        videoClient(copy.baseUrl, copy.token('doctor', 'doc-busy')).getProviderStatus({}),
      );
    });
    const codes = await Promise.all(calls);
    expect(codes.filter((code) => code === 'ok')).toHaveLength(6);
    expect(codes.filter((code) => code === Code.ResourceExhausted)).toHaveLength(14);
  });

  it('count failed authentications of one address across copies', async () => {
    const [a, b] = await start({ AUTH_FAILURE_LIMIT: '3', AUTH_FAILURE_WINDOW_SECONDS: '60' });
    const forged = (copy: TestApp) =>
      codeOf(videoClient(copy.baseUrl, `${copy.token('doctor', 'doc-x')}x`).getProviderStatus({}));
    const genuine = (copy: TestApp) =>
      codeOf(videoClient(copy.baseUrl, copy.token('doctor', 'doc-x')).getProviderStatus({}));
    expect([await forged(a), await forged(a), await genuine(a)]).toEqual([
      Code.Unauthenticated,
      Code.Unauthenticated,
      'ok',
    ]);
    // The third failure, on the other copy, reaches the limit counted by both.
    expect(await forged(b)).toBe(Code.Unauthenticated);
    expect(await genuine(b)).toBe(Code.ResourceExhausted);
    // The first copy learns it from the store at the address's next failure there.
    expect(await forged(a)).toBe(Code.Unauthenticated);
    expect(await genuine(a)).toBe(Code.ResourceExhausted);
  });

  it('count in each copy alone while the store fails, and fail no call for it', {
    timeout: 30_000,
  }, async () => {
    const [a, b] = await start({ RATE_LIMIT_REQUESTS: '3', RATE_LIMIT_WINDOW_SECONDS: '60' });
    const url = database.env.DATABASE_URL ?? '';
    await admin(url, 'alter table rate_limit rename to rate_limit_away');
    try {
      for (const copy of [a, b]) {
        const caller = videoClient(copy.baseUrl, copy.token('doctor', 'doc-steady'));
        const codes = [];
        for (let i = 0; i < 4; i++) codes.push(await codeOf(caller.getProviderStatus({})));
        expect(codes).toEqual(['ok', 'ok', 'ok', Code.ResourceExhausted]);
      }
    } finally {
      await admin(url, 'alter table rate_limit_away rename to rate_limit');
    }
    // Each copy asks the store again after a while: then back to the shared count, a new
    // caller gets the limit once across both.
    await setTimeout(STORE_RETRY_MS + 100);
    const codes = [];
    for (let i = 0; i < 6; i++) {
      const copy = i % 2 === 0 ? a : b;
      codes.push(
        await codeOf(
          videoClient(copy.baseUrl, copy.token('doctor', 'doc-later')).getProviderStatus({}),
        ),
      );
    }
    expect(codes.filter((code) => code === 'ok')).toHaveLength(3);
  });
});
