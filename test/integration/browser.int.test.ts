import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrowserApi, CallSummary, Outcome, RunOptions } from '../browser/client.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { launchChromium } from '../support/chromium.js';
import { appointmentId, videoClient } from '../support/clients.js';

/**
 * The service as a browser meets it: a page on another origin than the service calls it
 * through connect-web (Connect, Connect GET, gRPC-Web, a server stream), which works only
 * when CORS_ALLOWED_ORIGINS lists the page's origin; and the API reference at /docs.
 *
 * Needs Chromium (Debian's `chromium` package, or CHROMIUM_PATH); fails, never skips,
 * without it. Playwright drives it; Playwright's own browser download is not used.
 */
const CALL_TIMEOUT_MS = 10_000;
const STEP_TIMEOUT_MS = 20_000;
const TEST_TIMEOUT_MS = 90_000;

const root = (path: string) => fileURLToPath(new URL(`../../${path}`, import.meta.url));

let browser: Browser | undefined;
let pages: PageServer | undefined;
/** Lists the page's origin in CORS_ALLOWED_ORIGINS. */
let allowed: TestApp | undefined;
/** Lists other origins only: the page's own host on another name, and an https site. */
let refused: TestApp | undefined;

interface PageServer {
  readonly origin: string;
  close(): Promise<void>;
}

/** A page and the client bundle on 127.0.0.1, another port (so another origin) than the service. */
async function startPageServer(bundle: Uint8Array): Promise<PageServer> {
  const html =
    '<!doctype html><html><head><meta charset="utf-8"><title>browser client</title></head>' +
    '<body><script type="module" src="/client.js"></script></body></html>';
  const server = http.createServer((req, res) => {
    if (req.url === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(html);
    } else if (req.url === '/client.js') {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' });
      res.end(bundle);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function withTimeout<T>(promise: Promise<T>, what: string, ms = STEP_TIMEOUT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

beforeAll(async () => {
  browser = await launchChromium(STEP_TIMEOUT_MS);
  const bundle = await build({
    entryPoints: [root('test/browser/client.ts')],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    write: false,
    logLevel: 'silent',
  });
  const file = bundle.outputFiles[0];
  if (!file) throw new Error('esbuild produced no bundle');
  pages = await startPageServer(file.contents);
  const otherHost = pages.origin.replace('127.0.0.1', 'localhost');
  // One after the other: two embedded engines starting at once in one process starve
  // each other's first connection on a busy machine.
  allowed = await startTestApp({ CORS_ALLOWED_ORIGINS: pages.origin });
  refused = await startTestApp({ CORS_ALLOWED_ORIGINS: `https://app.example,${otherHost}` });
});

afterAll(async () => {
  await Promise.allSettled([browser?.close(), pages?.close(), allowed?.stop(), refused?.stop()]);
});

interface SentRequest {
  readonly method: string;
  readonly url: string;
  /** The headers Chromium really sent, Origin included. */
  readonly headers: Record<string, string>;
  /** The CORS header of its answer. */
  readonly allowOrigin: string | undefined;
}

interface PageRun {
  readonly summary: CallSummary;
  /** Each request to the service that got an answer (Chromium does not report preflights). */
  readonly requests: SentRequest[];
  readonly console: string[];
}

/** Opens the page from its own origin and runs the calls there over one transport. */
async function runInPage(
  app: TestApp,
  transport: RunOptions['transport'],
  doctorId: string,
): Promise<PageRun> {
  const context = await browser!.newContext();
  try {
    const page = await context.newPage();
    const messages: string[] = [];
    page.on('console', (message) => messages.push(message.text()));
    const answered: Promise<SentRequest>[] = [];
    page.on('response', (response) => {
      const request = response.request();
      if (!request.url().startsWith(app.baseUrl)) return;
      answered.push(
        request.allHeaders().then((headers) => ({
          method: request.method(),
          url: request.url(),
          headers,
          allowOrigin: response.headers()['access-control-allow-origin'],
        })),
      );
    });
    await openClientPage(page);
    const options: RunOptions = {
      baseUrl: app.baseUrl,
      transport,
      serviceToken: app.token('service', 'appointments'),
      doctorToken: app.token('doctor', doctorId),
      doctorId,
      appointmentId: appointmentId(`browser-${transport}`),
      timeoutMs: CALL_TIMEOUT_MS,
    };
    const summary = await withTimeout(
      page.evaluate((o) => (globalThis as unknown as BrowserApi).runCalls(o), options),
      `runCalls over ${transport}`,
    );
    const requests = await withTimeout(Promise.all(answered), 'request headers');
    return { summary, requests, console: messages };
  } finally {
    await context.close();
  }
}

async function openClientPage(page: Page): Promise<void> {
  await page.goto(`${pages!.origin}/`, { timeout: STEP_TIMEOUT_MS });
  await page.waitForFunction(
    () => typeof (globalThis as unknown as Partial<BrowserApi>).runCalls === 'function',
    undefined,
    { timeout: STEP_TIMEOUT_MS },
  );
}

/** Every call of a summary, by name, for the checks all of them share. */
function outcomes(summary: CallSummary): [string, Outcome<unknown>][] {
  return Object.entries(summary).filter(
    (entry): entry is [string, Outcome<unknown>] =>
      typeof entry[1] === 'object' && entry[1] !== null && 'ok' in entry[1],
  );
}

const procedure = (url: string) => new URL(url).pathname;

describe('a page on an allowed origin', () => {
  it(
    'calls over Connect, Connect GET and gRPC-Web, and reads a server stream',
    async () => {
      const connect = await runInPage(allowed!, 'connect', 'd1');
      const grpcWeb = await runInPage(allowed!, 'grpc-web', 'd1');

      for (const run of [connect, grpcWeb]) {
        const { summary } = run;
        expect(summary.providerStatus).toMatchObject({ ok: true });
        if (summary.providerStatus.ok) {
          expect(summary.providerStatus.value.providers).toBeGreaterThan(0);
        }
        expect(summary.schedule).toMatchObject({ ok: true });
        const consultationId = summary.schedule.ok ? summary.schedule.value.consultationId : '';
        expect(consultationId).not.toBe('');
        expect(summary.consultationStatus).toEqual({
          ok: true,
          value: { consultationId, status: 'SCHEDULED' },
        });
        expect(summary.watch).toEqual({ ok: true, value: { status: 'SERVING' } });

        // Really cross-origin, with the token in a header, and let through by CORS.
        expect(run.requests.length).toBeGreaterThanOrEqual(4);
        for (const request of run.requests) {
          expect(request.headers.origin).toBe(pages!.origin);
        }
        expect(
          run.requests.filter((r) => r.headers.authorization?.startsWith('Bearer ')).length,
        ).toBeGreaterThanOrEqual(3);
        expect(new Set(run.requests.map((r) => r.allowOrigin))).toEqual(new Set([pages!.origin]));
      }

      // Connect GET: the side-effect-free reads went out as GET, with the message in the URL.
      const connectId = connect.summary.schedule.ok
        ? connect.summary.schedule.value.consultationId
        : '';
      expect(connect.summary.getConsultationStatus).toEqual({
        ok: true,
        value: { consultationId: connectId, status: 'SCHEDULED' },
      });
      expect(connect.summary.getProviderStatus).toMatchObject({ ok: true });
      const gets = connect.requests.filter((r) => r.method === 'GET');
      expect(gets.map((r) => procedure(r.url)).sort()).toEqual([
        '/video.v1.VideoService/GetConsultationStatus',
        '/video.v1.VideoService/GetProviderStatus',
      ]);
      for (const get of gets) {
        const url = new URL(get.url);
        expect(url.searchParams.get('connect')).toBe('v1');
        expect(url.searchParams.get('message')).not.toBeNull();
        expect(get.headers.authorization).toMatch(/^Bearer /);
      }
      expect(
        connect.requests
          .filter((r) => r.method === 'POST')
          .map((r) => procedure(r.url))
          .sort(),
      ).toEqual([
        '/grpc.health.v1.Health/Watch',
        '/video.v1.VideoService/GetConsultationStatus',
        '/video.v1.VideoService/GetProviderStatus',
        '/video.v1.VideoService/ScheduleConsultation',
      ]);

      // gRPC-Web: every call a POST of application/grpc-web, no GET.
      expect(grpcWeb.summary.getConsultationStatus).toBeUndefined();
      expect(grpcWeb.requests.map((r) => r.method)).toEqual(grpcWeb.requests.map(() => 'POST'));
      for (const request of grpcWeb.requests) {
        expect(request.headers['content-type']).toMatch(/^application\/grpc-web/);
      }
      expect(grpcWeb.requests.map((r) => procedure(r.url)).sort()).toEqual([
        '/grpc.health.v1.Health/Watch',
        '/video.v1.VideoService/GetConsultationStatus',
        '/video.v1.VideoService/GetProviderStatus',
        '/video.v1.VideoService/ScheduleConsultation',
      ]);
    },
    TEST_TIMEOUT_MS,
  );
});

describe('a page on an origin the service does not list', () => {
  it(
    'cannot call it over either transport, while a client without an Origin can',
    async () => {
      for (const transport of ['connect', 'grpc-web'] as const) {
        const run = await runInPage(refused!, transport, 'd2');
        const calls = outcomes(run.summary);
        expect(calls.length).toBe(transport === 'connect' ? 6 : 4);
        for (const [name, call] of calls) {
          // The browser refused the answer: fetch failed, which connect-web reports as
          // a ConnectError without a status from the server.
          expect(call, `${transport} ${name}`).toMatchObject({ ok: false });
          if (call.ok) continue;
          expect(['Unknown', 'Unavailable'], `${transport} ${name}`).toContain(call.code);
          expect(`${call.message} ${call.cause}`, `${transport} ${name}`).toMatch(
            /Failed to fetch/,
          );
        }
        // …and Chromium says why.
        const blocked = run.console.filter((line) => /blocked by CORS policy/.test(line));
        expect(blocked.length, run.console.join('\n')).toBeGreaterThanOrEqual(calls.length);
        expect(blocked.join('\n')).toContain(`from origin '${pages!.origin}'`);
      }

      // The service itself is fine: the same call from Node (no Origin) is answered.
      const providers = await videoClient(
        refused!.baseUrl,
        refused!.token('doctor', 'd2'),
      ).getProviderStatus({}, { timeoutMs: CALL_TIMEOUT_MS });
      expect(providers.providers.length).toBeGreaterThan(0);

      // And the preflight the browser sent was answered without a CORS header.
      const preflight = await fetch(`${refused!.baseUrl}/video.v1.VideoService/GetProviderStatus`, {
        method: 'OPTIONS',
        headers: {
          origin: pages!.origin,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'authorization,content-type,connect-protocol-version',
        },
        signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
      });
      expect(preflight.status).toBe(204);
      expect(preflight.headers.get('access-control-allow-origin')).toBeNull();
    },
    TEST_TIMEOUT_MS,
  );
});

describe('the API reference at /docs', () => {
  it(
    'lists every operation of the OpenAPI document, and "Try it out" calls the service',
    async () => {
      const document = JSON.parse(readFileSync(root('gen/openapi.json'), 'utf8')) as {
        paths: Record<string, Record<string, unknown>>;
      };
      const operations = Object.entries(document.paths).flatMap(([path, item]) =>
        Object.keys(item)
          .filter((key) => ['get', 'post', 'put', 'patch', 'delete'].includes(key))
          .map((method) => `${method.toUpperCase()} ${path}`),
      );
      expect(operations.length).toBeGreaterThanOrEqual(17);

      const context = await browser!.newContext();
      try {
        const page = await context.newPage();
        page.setDefaultTimeout(STEP_TIMEOUT_MS);
        await page.goto(`${allowed!.baseUrl}/docs`);
        await page.locator('.opblock').first().waitFor();
        const listed = await page
          .locator('.opblock')
          .evaluateAll((blocks) =>
            blocks.map(
              (block) =>
                `${block.querySelector('.opblock-summary-method')?.textContent?.trim()} ${block
                  .querySelector('.opblock-summary-path')
                  ?.getAttribute('data-path')}`,
            ),
          );
        expect(listed.sort()).toEqual([...operations].sort());
        expect(listed).toEqual(
          expect.arrayContaining([
            'POST /api/video/token',
            'GET /api/video/consultation/{consultationId}/status',
            'GET /api/video/providers/status',
            'POST /api/video/consultation/schedule',
          ]),
        );

        // Authorize with a doctor's token, then run GetProviderStatus from the page.
        const token = allowed!.token('doctor', 'd1');
        await page.locator('.auth-wrapper button.authorize').click();
        await page.locator('.modal-ux input').first().fill(token);
        await page.locator('.modal-ux button.authorize').click();
        await page.locator('.modal-ux button.btn-done').click();
        const operation = page.locator('.opblock', {
          has: page.locator('.opblock-summary-path[data-path="/api/video/providers/status"]'),
        });
        await operation.locator('.opblock-summary').click();
        const answered = page.waitForResponse((response) =>
          response.url().startsWith(`${allowed!.baseUrl}/api/video/providers/status`),
        );
        await operation.locator('button.execute').click();
        const response = await answered;
        expect(response.request().headers().authorization).toBe(`Bearer ${token}`);
        expect(response.status()).toBe(200);
        const body = (await response.json()) as { providers?: unknown[] };
        expect(body.providers?.length).toBeGreaterThan(0);
        await expect
          .poll(() =>
            operation.locator('.live-responses-table tbody .response-col_status').textContent(),
          )
          .toContain('200');
      } finally {
        await context.close();
      }
    },
    TEST_TIMEOUT_MS,
  );
});
