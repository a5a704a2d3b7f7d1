import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintToken } from '../../src/auth/jwt.js';
import { DEVELOPMENT_JWT_SECRET } from '../../src/config.js';
import { buildWebApp, serveWebApp } from '../../web/bundle.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { launchChromium } from '../support/chromium.js';
import { appointmentId, slot, videoClient } from '../support/clients.js';
import { createTestDatabase, serverForSeveralCopies } from '../support/database.js';

/**
 * The web app (web/) as its users meet it: built, served by the service at /app/, and
 * used in Chromium by a doctor and a patient at once, each in a browser context of their
 * own. Every update reaches the other page through the watch streams, without a reload.
 * Screenshots of both views are left in test-results/web-app/.
 */
const ARTIFACTS = fileURLToPath(new URL('../../test-results/web-app/', import.meta.url));
const STEP_MS = 10_000;

let browser: Browser;
let app: TestApp;
let built: string;

beforeAll(async () => {
  built = await mkdtemp(join(tmpdir(), 'web-app-'));
  await buildWebApp(built);
  await mkdir(ARTIFACTS, { recursive: true });
  browser = await launchChromium();
  // A second of clock skew allowed (30 by default): the service refuses an expired
  // token, and so ends the page's streams, a second after its exp.
  app = await startTestApp({ WEB_APP_DIR: built, AUTH_CLOCK_SKEW_SECONDS: '1' });
}, 60_000);

afterAll(async () => {
  await Promise.allSettled([browser?.close(), app?.stop()]);
  await rm(built, { recursive: true, force: true });
});

/** Opens the app in a fresh browser context, signed in with a token for `role`. */
async function openApp(role: 'doctor' | 'patient', userId: string, query = '', base?: string) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 760 } });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (error) => problems.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(message.text());
  });
  // The doctor's End asks to confirm.
  page.on('dialog', (dialog) => void dialog.accept());
  const at = base ?? `${app.baseUrl}/app/`;
  await page.goto(`${at}${query}#token=${app.token(role, userId)}`);
  return { page, problems, close: () => context.close() };
}

/** A port nothing listens on now. */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const text = (page: Page, test: string) =>
  page.locator(`[data-test="${test}"]`).first().textContent({ timeout: STEP_MS });

async function schedule(doctorId: string, patientId: string) {
  const { consultation } = await videoClient(
    app.baseUrl,
    app.token('service', 'appointments'),
  ).scheduleConsultation({ appointmentId: appointmentId('web'), doctorId, patientId, ...slot(5) });
  return consultation!.id;
}

describe('the web app in Chromium', () => {
  it('shows the doctor a patient who checks in within a second, the patient the join link once let in, and both the end', async () => {
    const id = await schedule('doc-web', 'pat-web');
    const doctor = await openApp('doctor', 'doc-web');
    const patient = await openApp('patient', 'pat-web', `?consultation=${id}`);
    try {
      // Both pages are live: the doctor's waiting room and the patient's consultation.
      await doctor.page.getByText('Nobody is waiting.').waitFor({ timeout: STEP_MS });
      await patient.page.locator('[data-test="stream"].live').waitFor({ timeout: STEP_MS });
      expect(await text(patient.page, 'status')).toBe('Scheduled');
      expect(await text(doctor.page, 'who')).toContain('doc-web (doctor, clinic clinic-1)');

      // The patient checks in; the doctor's open page shows them, without a reload.
      const row = doctor.page.locator(`[data-test="waiting-patient"][data-consultation="${id}"]`);
      await patient.page.locator('[data-test="check-in"]').click();
      const clicked = Date.now();
      await row.waitFor({ timeout: STEP_MS });
      const shownAfterMs = Date.now() - clicked;
      expect(shownAfterMs).toBeLessThan(1_000);
      expect(await row.textContent()).toContain('pat-web');
      await patient.page.getByText('You are next in the queue').waitFor({ timeout: STEP_MS });
      await doctor.page.screenshot({ path: join(ARTIFACTS, 'doctor-waiting-room.png') });
      await patient.page.screenshot({ path: join(ARTIFACTS, 'patient-waiting.png') });

      // The doctor lets them in: the patient's page shows the join link.
      await row.getByRole('button', { name: 'Let in' }).click();
      const link = patient.page.locator('[data-test="join-link"]');
      await link.waitFor({ timeout: STEP_MS });
      expect(await link.getAttribute('href')).toMatch(/^https?:\/\//);
      await row.waitFor({ state: 'detached', timeout: STEP_MS });

      // The patient reports a problem; the doctor's consultation panel shows it.
      const panel = doctor.page.locator(`[data-test="consultation"][data-consultation="${id}"]`);
      await patient.page
        .locator('[data-test="report"] input[name="description"]')
        .fill('echo on my side');
      await patient.page.locator('[data-test="report"] button').click();
      await panel.getByText('echo on my side').waitFor({ timeout: STEP_MS });

      // The doctor starts, gets their own link, and ends: both pages show the end.
      await panel.locator('[data-test="start"]').click();
      await panel.locator('[data-test="join-link"]').waitFor({ timeout: STEP_MS });
      await doctor.page.screenshot({ path: join(ARTIFACTS, 'doctor-consultation.png') });
      await patient.page.screenshot({ path: join(ARTIFACTS, 'patient-let-in.png') });
      await panel.locator('[data-test="end"]').click();
      await panel
        .locator('[data-test="status"]', { hasText: 'Ended' })
        .waitFor({ timeout: STEP_MS });
      await patient.page
        .locator('[data-test="status"]', { hasText: 'Ended' })
        .waitFor({ timeout: STEP_MS });
      // A final state ends the stream, and the join link goes.
      expect(await patient.page.locator('[data-test="join-link"]').count()).toBe(0);
      await doctor.page.screenshot({ path: join(ARTIFACTS, 'doctor-ended.png') });
      await patient.page.screenshot({ path: join(ARTIFACTS, 'patient-ended.png') });

      expect(doctor.problems).toEqual([]);
      expect(patient.problems).toEqual([]);
    } finally {
      await Promise.allSettled([doctor.close(), patient.close()]);
    }
  }, 90_000);

  it('follows again by itself after the service restarts, and greys out what it showed meanwhile', async () => {
    const port = await freePort();
    // The same database before and after: a PostgreSQL database both starts share, or
    // the embedded engine's folder.
    const shared = serverForSeveralCopies ? await createTestDatabase() : undefined;
    const dataDir = await mkdtemp(join(tmpdir(), 'web-app-restart-'));
    const env = {
      PORT: String(port),
      WEB_APP_DIR: built,
      ...(shared ? {} : { DATA_DIR: dataDir }),
    };
    let service = await startTestApp(env, shared);
    try {
      const base = `${service.baseUrl}/app/`;
      const { consultation } = await videoClient(
        service.baseUrl,
        service.token('service', 'appointments'),
      ).scheduleConsultation({
        appointmentId: appointmentId('web-restart'),
        doctorId: 'doc-restart',
        patientId: 'pat-restart',
        ...slot(5),
      });
      const id = consultation!.id;
      const doctor = await openApp('doctor', 'doc-restart', '', base);
      const patient = await openApp('patient', 'pat-restart', `?consultation=${id}`, base);
      try {
        await doctor.page.getByText('Nobody is waiting.').waitFor({ timeout: STEP_MS });
        await patient.page.locator('[data-test="stream"].live').waitFor({ timeout: STEP_MS });

        await service.stop();
        await doctor.page.locator('[data-test="waiting-room"].stale').waitFor({ timeout: STEP_MS });
        await patient.page
          .locator('[data-test="consultation"].stale')
          .waitFor({ timeout: STEP_MS });
        service = await startTestApp(env, shared);

        // Both pages follow again without a reload: a check-in reaches the doctor's.
        await patient.page.locator('[data-test="stream"].live').waitFor({ timeout: 20_000 });
        await patient.page.locator('[data-test="check-in"]').click();
        await doctor.page
          .locator(`[data-test="waiting-patient"][data-consultation="${id}"]`)
          .waitFor({ timeout: 20_000 });
        expect(await doctor.page.locator('[data-test="waiting-room"].stale').count()).toBe(0);
      } finally {
        await Promise.allSettled([doctor.close(), patient.close()]);
      }
    } finally {
      await service.stop();
      await shared?.drop();
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 90_000);

  it('signs the user out when their token expires, saying so', async () => {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      const token = mintToken({
        secret: DEVELOPMENT_JWT_SECRET,
        role: 'doctor',
        userId: 'doc-expiring',
        clinicId: 'clinic-1',
        expiresInSeconds: 2,
      });
      await page.goto(`${app.baseUrl}/app/#token=${token}`);
      await page.getByText('Nobody is waiting.').waitFor({ timeout: STEP_MS });
      const problem = page.locator('[data-test="sign-in-problem"]');
      await problem.waitFor({ timeout: STEP_MS });
      expect(await problem.textContent()).toContain('expired');
      // Pasting a token that has expired already is refused on the spot.
      await page.locator('input[name="token"]').fill(`$ npm run token\n${token}\n`);
      await page.getByRole('button', { name: 'Sign in' }).click();
      expect(await problem.textContent()).toContain('That token expired');
    } finally {
      await context.close();
    }
  });

  it('runs on its own development server against the service, through CORS', async () => {
    const dev = await serveWebApp(0, join(built, 'dev'));
    const origin = new URL(dev.url).origin;
    const service = await startTestApp({ CORS_ALLOWED_ORIGINS: origin });
    try {
      const doctor = await openApp(
        'doctor',
        'doc-dev',
        `?service=${encodeURIComponent(service.baseUrl)}`,
        dev.url,
      );
      try {
        await doctor.page.getByText('Nobody is waiting.').waitFor({ timeout: STEP_MS });
        expect(doctor.problems).toEqual([]);
      } finally {
        await doctor.close();
      }
    } finally {
      await Promise.allSettled([service.stop(), dev.stop()]);
    }
  }, 60_000);
});

describe('/app/ on the service', () => {
  it('serves the app with a strict Content-Security-Policy, and redirects /app to /app/', async () => {
    const page = await fetch(`${app.baseUrl}/app/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('content-security-policy')).toContain("connect-src 'self'");
    expect(page.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(await page.text()).toContain('<script type="module" src="app.js">');
    const script = await fetch(`${app.baseUrl}/app/app.js`);
    expect(script.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    const bare = await fetch(`${app.baseUrl}/app`, { redirect: 'manual' });
    expect([bare.status, bare.headers.get('location')]).toEqual([308, '/app/']);
    expect((await fetch(`${app.baseUrl}/app/../package.json`)).status).toBe(404);
    expect((await fetch(`${app.baseUrl}/app/missing.js`)).status).toBe(404);
  });

  it('sends a browser that opens the service’s address on to the app; others get the links', async () => {
    const browser = await fetch(`${app.baseUrl}/`, {
      redirect: 'manual',
      headers: { accept: 'text/html,application/xhtml+xml' },
    });
    expect([browser.status, browser.headers.get('location')]).toEqual([302, '/app/']);
    const other = await fetch(`${app.baseUrl}/`);
    expect(other.status).toBe(200);
    for (const answer of [browser, other]) expect(answer.headers.get('vary')).toMatch(/accept/i);
    expect(await other.json()).toMatchObject({
      service: 'video-service',
      links: { app: '/app/', docs: '/docs', openapi: '/openapi.json', health: '/healthz' },
    });
  });

  it('says how to build the app when it is not built', async () => {
    const empty = await startTestApp({ WEB_APP_DIR: join(built, 'nothing-here') });
    try {
      const answer = await fetch(`${empty.baseUrl}/app/`);
      expect(answer.status).toBe(404);
      expect(await answer.json()).toMatchObject({
        message: expect.stringContaining('npm run build:web'),
      });
    } finally {
      await empty.stop();
    }
  });
});
