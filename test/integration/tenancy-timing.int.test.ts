import { Code, ConnectError } from '@connectrpc/connect';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';
import { appointmentId, slot, videoClient } from '../support/clients.js';

/**
 * Another clinic's consultation must be indistinguishable from one that does not exist:
 * same code, same message, and no timing difference a caller could measure. Calls are
 * interleaved and medians compared, so machine noise hits both sides alike.
 */
let t: TestApp;
let otherClinics: string;
beforeAll(async () => {
  t = await startTestApp();
  const { consultation } = await videoClient(
    t.baseUrl,
    t.token('service', 'svc', 'clinic-2'),
  ).scheduleConsultation({
    appointmentId: appointmentId('timing'),
    doctorId: 'doc-t',
    patientId: 'pat-t',
    ...slot(30),
  });
  otherClinics = consultation!.id;
});
afterAll(async () => {
  await t?.stop();
});

it('answers another clinic’s consultation exactly like a missing one, in the same time', async () => {
  const admin = videoClient(t.baseUrl, t.token('clinic_admin', 'admin', 'clinic-1'));
  const ask = async (consultationId: string) => {
    const started = performance.now();
    const error = await admin.getConsultationStatus({ consultationId }).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    return { ms: performance.now() - started, code: error?.code, message: error?.rawMessage };
  };
  const existing: number[] = [];
  const missing: number[] = [];
  for (let i = 0; i < 150; i++) {
    const a = await ask(otherClinics);
    const b = await ask(crypto.randomUUID());
    expect([a.code, a.message]).toEqual([Code.NotFound, 'consultation not found']);
    expect([b.code, b.message]).toEqual([Code.NotFound, 'consultation not found']);
    existing.push(a.ms);
    missing.push(b.ms);
  }
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  const [m1, m2] = [median(existing), median(missing)];
  console.log(`median ms: other clinic ${m1.toFixed(2)}, missing ${m2.toFixed(2)}`);
  expect(Math.abs(m1 - m2)).toBeLessThan(Math.max(1, 0.4 * Math.min(m1, m2)));
});
