import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';
import { appointmentId, videoClient } from '../support/clients.js';
import { collectRecords, uniquePrefix } from '../support/events.js';
import { jpeg, png } from '../support/images.js';

/**
 * The REST routes of the `google.api.http` annotations, called with plain `fetch` as any
 * HTTP/JSON client would: every route, its errors with Connect's HTTP statuses and error
 * body, query parameters, multipart uploads, and the same audit rows and events as the
 * Connect call that the same handler serves.
 */
const brokers = inject('kafkaBrokers');
const prefix = uniquePrefix('rest');
let t: TestApp;
let reader: Awaited<ReturnType<typeof collectRecords>>;

beforeAll(async () => {
  reader = await collectRecords(brokers, [`${prefix}video.technical.issue.reported`]);
  t = await startTestApp({ KAFKA_BROKERS: brokers, KAFKA_TOPIC_PREFIX: prefix });
});
afterAll(async () => {
  await t?.stop();
  await reader?.stop();
});

type Role = Parameters<TestApp['token']>[0];
interface Answer {
  readonly status: number;
  readonly headers: Headers;
  // biome-ignore lint/suspicious/noExplicitAny: JSON answers are looked at field by field.
  readonly body: any;
}

/** One REST call: `as` is [role, user, clinic?], or undefined for no token. */
async function rest(
  method: string,
  path: string,
  as: [Role, string, string?] | undefined,
  body?: unknown,
  base = t,
): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (as) headers.authorization = `Bearer ${base.token(...as)}`;
  let payload: string | FormData | undefined;
  if (body instanceof FormData) payload = body;
  else if (body !== undefined) {
    headers['content-type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  const response = await fetch(`${base.baseUrl}${path}`, { method, headers, body: payload });
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    body: text === '' ? undefined : JSON.parse(text),
  };
}

const service: [Role, string] = ['service', 'appointments'];
const doctor: [Role, string] = ['doctor', 'doc-r'];
const patient: [Role, string] = ['patient', 'pat-r'];
const admin: [Role, string] = ['clinic_admin', 'admin-r'];

/** A slot starting in five minutes, as proto JSON (RFC 3339). */
function slotJson(minutesFromNow = 5, minutes = 30) {
  const start = new Date(Date.now() + minutesFromNow * 60_000);
  const end = new Date(start.getTime() + minutes * 60_000);
  return { scheduledStart: start.toISOString(), scheduledEnd: end.toISOString() };
}

async function schedule(doctorId = doctor[1], patientId = patient[1]) {
  const appointment = appointmentId('rest');
  const { status, body } = await rest('POST', '/api/video/consultation/schedule', service, {
    appointmentId: appointment,
    doctorId,
    patientId,
    ...slotJson(),
  });
  expect(status).toBe(200);
  return { id: body.consultation.id as string, appointment };
}

describe('REST routes', () => {
  it('runs a whole consultation over REST, every route answering protobuf JSON', async () => {
    const { id, appointment } = await schedule();
    const again = await rest('POST', '/api/video/consultation/schedule', service, {
      appointmentId: appointment,
      doctorId: doctor[1],
      patientId: patient[1],
      ...slotJson(),
    });
    expect(again.body).toMatchObject({ consultation: { id } });
    expect(again.body.created).toBeUndefined(); // proto JSON leaves out a false bool

    const checkIn = await rest('POST', `/api/video/consultation/${id}/check-in`, patient);
    expect(checkIn).toMatchObject({ status: 200, body: { queuePosition: 1 } });
    expect(checkIn.body.consultation.status).toBe('CONSULTATION_STATUS_WAITING');

    const room = await rest('GET', '/api/video/waiting-room', doctor);
    expect(room.body.patients.map((p: { consultationId: string }) => p.consultationId)).toContain(
      id,
    );
    const admitted = await rest('POST', `/api/video/consultation/${id}/admit`, doctor, {});
    expect(admitted.status).toBe(200);

    const started = await rest('POST', '/api/video/consultation/start', doctor, {
      consultationId: id,
    });
    expect(started.body).toMatchObject({
      started: true,
      consultation: { status: 'CONSULTATION_STATUS_IN_PROGRESS' },
    });

    const token = await rest('POST', '/api/video/token', patient, { consultationId: id });
    expect(token.status).toBe(200);
    expect(token.body).toMatchObject({
      provider: 'PROVIDER_JITSI',
      role: 'PARTICIPANT_ROLE_PATIENT',
    });
    expect(token.body.joinUrl).toMatch(/^https:\/\//);
    expect(Date.parse(token.body.expiresAt)).toBeGreaterThan(Date.now());

    const status = await rest('GET', `/api/video/consultation/${id}/status`, doctor);
    expect(status.body.consultation).toMatchObject({
      id,
      status: 'CONSULTATION_STATUS_IN_PROGRESS',
    });
    expect(status.headers.get('cache-control')).toBe('private, no-store');

    const report = await rest('POST', `/api/video/consultation/${id}/report`, patient, {
      issueType: 'TECHNICAL_ISSUE_TYPE_AUDIO',
      description: 'no sound',
    });
    expect(report.status).toBe(200);
    expect(report.body.issueId).toMatch(/^[0-9a-f-]{36}$/);

    const shared = await rest('POST', '/api/video/image/share', doctor, {
      consultationId: id,
      content: Buffer.from(png()).toString('base64'),
    });
    expect(shared.body).toMatchObject({ contentType: 'image/png', sizeBytes: png().length });

    for (const who of [doctor, patient]) {
      const consent = await rest('POST', `/api/video/consultation/${id}/consent`, who, {});
      expect(consent.status).toBe(200);
    }
    // Jitsi here records nothing: the provider's refusal is Connect's 400 for FAILED_PRECONDITION.
    const recording = await rest('POST', `/api/video/consultation/${id}/recording/start`, doctor);
    expect(recording).toMatchObject({ status: 400, body: { code: 'failed_precondition' } });
    const stopped = await rest('POST', `/api/video/consultation/${id}/recording/stop`, doctor);
    expect(stopped.status).toBe(200);

    const providers = await rest('GET', '/api/video/providers/status', patient);
    expect(providers.body.providers[0]).toMatchObject({
      provider: 'PROVIDER_JITSI',
      healthy: true,
    });

    const ended = await rest('POST', '/api/video/consultation/end', doctor, { consultationId: id });
    expect(ended.body.consultation.status).toBe('CONSULTATION_STATUS_ENDED');

    const audit = await rest('GET', `/api/video/audit?resourceId=${id}&pageSize=50`, admin);
    const actions = audit.body.entries.map((e: { action: string }) => e.action);
    expect(actions).toEqual(
      expect.arrayContaining([
        'consultation.schedule',
        'consultation.check_in',
        'consultation.admit',
        'consultation.start',
        'consultation.join',
        'consultation.read',
        'consultation.report_issue',
        'consultation.share_image',
        'consultation.record_consent',
        'consultation.record',
        'consultation.end',
      ]),
    );
  });

  it('cancels by appointment id', async () => {
    const { id, appointment } = await schedule();
    const cancelled = await rest('POST', '/api/video/consultation/cancel', service, {
      appointmentId: appointment,
    });
    expect(cancelled.body.consultation).toMatchObject({
      id,
      status: 'CONSULTATION_STATUS_CANCELLED',
    });
  });

  it('takes filters and paging from the query string, by JSON or proto field name', async () => {
    const doctorId = `doc-q-${Date.now()}`;
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push((await schedule(doctorId)).id);
    await rest('POST', '/api/video/consultation/cancel', service, { consultationId: ids[0] });

    const me: [Role, string] = ['doctor', doctorId];
    const first = await rest('GET', '/api/video/history?pageSize=2', me);
    expect(first.body.consultations).toHaveLength(2);
    const second = await rest(
      'GET',
      `/api/video/history?page_size=2&pageToken=${encodeURIComponent(first.body.nextPageToken)}`,
      me,
    );
    expect(second.body.consultations).toHaveLength(1);
    expect(second.body.nextPageToken).toBeUndefined();

    const scheduledOnly = await rest(
      'GET',
      '/api/video/history?statuses=CONSULTATION_STATUS_SCHEDULED&statuses=CONSULTATION_STATUS_WAITING',
      me,
    );
    expect(scheduledOnly.body.consultations).toHaveLength(2);
    const cancelledOnly = await rest('GET', '/api/video/history?statuses=5', me);
    expect(cancelledOnly.body.consultations.map((c: { id: string }) => c.id)).toEqual([ids[0]]);

    const future = new Date(Date.now() + 24 * 3600_000).toISOString();
    const none = await rest('GET', `/api/video/history?scheduledFrom=${future}`, me);
    expect(none.body.consultations ?? []).toHaveLength(0);

    const unknown = await rest('GET', '/api/video/history?colour=blue', me);
    expect(unknown).toMatchObject({ status: 400, body: { code: 'invalid_argument' } });
    expect(unknown.body.message).toContain('colour');
    const badNumber = await rest('GET', '/api/video/history?pageSize=many', me);
    expect(badNumber).toMatchObject({ status: 400, body: { code: 'invalid_argument' } });
  });

  it('answers errors with the Connect error body and the HTTP status of its code', async () => {
    const { id, appointment } = await schedule();
    const noToken = await rest('GET', `/api/video/consultation/${id}/status`, undefined);
    expect(noToken).toMatchObject({ status: 401, body: { code: 'unauthenticated' } });

    const forged = await fetch(`${t.baseUrl}/api/video/consultation/${id}/status`, {
      headers: { authorization: 'Bearer not.a.jwt' },
    });
    expect(forged.status).toBe(401);

    const denied = await rest('POST', '/api/video/consultation/end', patient, {
      consultationId: id,
    });
    expect(denied).toMatchObject({ status: 403, body: { code: 'permission_denied' } });

    // Another clinic's consultation does not exist for the caller, over REST as well.
    const otherClinic = await rest('GET', `/api/video/consultation/${id}/status`, [
      'clinic_admin',
      'admin-x',
      'clinic-2',
    ]);
    expect(otherClinic).toMatchObject({ status: 404, body: { code: 'not_found' } });
    const stranger = await rest('GET', `/api/video/consultation/${id}/status`, [
      'patient',
      'pat-x',
    ]);
    expect(stranger.body).toEqual(otherClinic.body);

    const badId = await rest('GET', '/api/video/consultation/not-a-uuid/status', doctor);
    expect(badId).toMatchObject({ status: 400, body: { code: 'invalid_argument' } });
    expect(badId.body.message).toMatch(/^consultation_id: /);

    const conflict = await rest('POST', '/api/video/consultation/schedule', service, {
      appointmentId: appointment,
      doctorId: 'another-doctor',
      patientId: patient[1],
      ...slotJson(),
    });
    expect(conflict).toMatchObject({ status: 409, body: { code: 'already_exists' } });

    const early = await rest('POST', '/api/video/token', patient, { consultationId: id });
    expect(early).toMatchObject({ status: 400, body: { code: 'failed_precondition' } });
  });

  it('answers 404 for an unknown path and 405 with Allow for a wrong method', async () => {
    const unknown = await rest('GET', '/api/video/nothing-here', doctor);
    expect(unknown).toMatchObject({ status: 404, body: { code: 'not_found' } });
    const wrong = await rest('DELETE', '/api/video/history', doctor);
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toBe('GET');
    expect(wrong.body.code).toBe('unimplemented');
    const post = await rest('GET', '/api/video/token', doctor);
    expect([post.status, post.headers.get('allow')]).toEqual([405, 'POST']);
  });

  it('refuses bodies that are not JSON objects without echoing them', async () => {
    const { id } = await schedule();
    const headers = {
      authorization: `Bearer ${t.token(...patient)}`,
      'content-type': 'application/json',
    };
    const url = `${t.baseUrl}/api/video/consultation/${id}/report`;
    const broken = await fetch(url, {
      method: 'POST',
      headers,
      body: '{"description": "PHI-MARKER',
    });
    expect(broken.status).toBe(400);
    const text = await broken.text();
    expect(JSON.parse(text)).toEqual({ code: 'invalid_argument', message: 'body: not valid JSON' });
    const array = await fetch(url, { method: 'POST', headers, body: '[1]' });
    expect(array.status).toBe(400);
    const xml = await fetch(url, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/xml' },
      body: '<a/>',
    });
    expect(xml.status).toBe(415);
  });

  it('answers the readiness view as JSON on /api/video/health', async () => {
    const health = await rest('GET', '/api/video/health', undefined);
    expect(health).toMatchObject({ status: 200, body: { status: 'ready', kafka: true } });
  });
});

describe('multipart image upload', () => {
  it('takes the file as part "image" and the other fields as form fields', async () => {
    const { id } = await schedule();
    const form = new FormData();
    form.set('consultationId', id);
    form.set('image', new Blob([jpeg()], { type: 'image/jpeg' }), 'scan.jpg');
    const shared = await rest('POST', '/api/video/image/share', doctor, form);
    expect(shared).toMatchObject({
      status: 200,
      body: { contentType: 'image/jpeg', sizeBytes: jpeg().length },
    });
    expect(shared.body.sha256).toMatch(/^[0-9a-f]{64}$/);

    // A browser sends a DICOM file as application/octet-stream: that declares nothing.
    const generic = new FormData();
    generic.set('consultation_id', id);
    generic.set('image', new Blob([png()], { type: 'application/octet-stream' }), 'x.bin');
    expect((await rest('POST', '/api/video/image/share', doctor, generic)).status).toBe(200);
  });

  it('applies the same type rules as the Connect call', async () => {
    const { id } = await schedule();
    const text = new FormData();
    text.set('consultationId', id);
    text.set('image', new Blob(['just text'], { type: 'text/plain' }), 'notes.txt');
    const refused = await rest('POST', '/api/video/image/share', doctor, text);
    expect(refused).toMatchObject({ status: 400, body: { code: 'invalid_argument' } });

    const mismatch = new FormData();
    mismatch.set('consultationId', id);
    mismatch.set('image', new Blob([png()], { type: 'image/jpeg' }), 'x.jpg');
    const declared = await rest('POST', '/api/video/image/share', doctor, mismatch);
    expect(declared.body.message).toMatch(/^content_type: declared image\/jpeg/);

    const noFile = new FormData();
    noFile.set('consultationId', id);
    expect((await rest('POST', '/api/video/image/share', doctor, noFile)).status).toBe(400);
  });

  it('refuses a file over the limit while reading it, not after buffering it', async () => {
    const small = await startTestApp({ MAX_IMAGE_BYTES: '2048' });
    try {
      const scheduled = await rest(
        'POST',
        '/api/video/consultation/schedule',
        service,
        { appointmentId: appointmentId('big'), doctorId: 'd', patientId: 'p', ...slotJson() },
        small,
      );
      const id = scheduled.body.consultation.id;
      const form = new FormData();
      form.set('consultationId', id);
      // 64 MiB: far more than the service would ever hold; it stops at 2049 bytes.
      form.set('image', new Blob([new Uint8Array(64 * 1024 * 1024)]), 'huge.png');
      const refused = await rest('POST', '/api/video/image/share', ['doctor', 'd'], form, small);
      expect(refused).toMatchObject({
        status: 400,
        body: { code: 'invalid_argument', message: 'content: must be at most 2048 bytes' },
      });
    } finally {
      await small.stop();
    }
  });
});

describe('the same handler as Connect', () => {
  it('writes the same audit row and the same event as the Connect call', async () => {
    const { id } = await schedule();
    await rest('POST', `/api/video/consultation/${id}/check-in`, patient);
    await rest('POST', `/api/video/consultation/${id}/admit`, doctor);
    await rest('POST', '/api/video/consultation/start', doctor, { consultationId: id });

    const request = { consultationId: id, issueType: 2, description: 'frozen picture' };
    await videoClient(t.baseUrl, t.token(...patient)).reportTechnicalIssue(request);
    await rest('POST', `/api/video/consultation/${id}/report`, patient, {
      issueType: 'TECHNICAL_ISSUE_TYPE_VIDEO',
      description: 'frozen picture',
    });

    const audit = await rest(
      'GET',
      `/api/video/audit?resourceId=${id}&action=consultation.report_issue`,
      admin,
    );
    const [viaRest, viaConnect] = audit.body.entries;
    const comparable = (e: Record<string, string>) => ({
      ...e,
      id: undefined,
      at: undefined,
      requestId: undefined,
      userAgent: undefined,
    });
    expect(audit.body.entries).toHaveLength(2);
    expect(comparable(viaRest)).toEqual(comparable(viaConnect));
    expect(viaRest).toMatchObject({ actorId: patient[1], outcome: 'allowed' });
    expect(viaRest.requestId).not.toBe(viaConnect.requestId);
    expect(viaRest.clientAddress).toMatch(/127\.0\.0\.1/);

    const mine = (records: typeof reader.records) =>
      records.filter((r) => (r.value as { consultationId?: string }).consultationId === id);
    const [fromConnect, fromRest] = mine(await reader.waitFor((all) => mine(all).length >= 2));
    const payload = (value: unknown) => ({
      ...(value as object),
      issueId: undefined,
      at: undefined,
    });
    expect(payload(fromRest?.value)).toEqual(payload(fromConnect?.value));
    expect(fromRest?.key).toBe(fromConnect?.key);
    expect(fromRest?.headers.ce_type).toBe('video.technical.issue.reported');
  });

  it('answers 429 with Retry-After when the caller is over the rate limit', async () => {
    const limited = await startTestApp({
      RATE_LIMIT_REQUESTS: '2',
      RATE_LIMIT_WINDOW_SECONDS: '60',
    });
    try {
      const call = () => rest('GET', '/api/video/providers/status', doctor, undefined, limited);
      await call();
      await call();
      const over = await call();
      expect(over).toMatchObject({ status: 429, body: { code: 'resource_exhausted' } });
      expect(Number(over.headers.get('retry-after'))).toBeGreaterThan(0);
    } finally {
      await limited.stop();
    }
  });

  it('answers 503 when a dependency is down (the identity provider’s keys)', async () => {
    const closed = await freePort();
    const jwks = await startTestApp({ AUTH_JWKS_URL: `http://127.0.0.1:${closed}/jwks.json` });
    try {
      const headers = {
        // An RS256-looking token with a kid, so the verifier has to ask the JWKS.
        authorization: `Bearer ${Buffer.from('{"alg":"RS256","kid":"k1"}').toString('base64url')}.e30.c2ln`,
      };
      const response = await fetch(`${jwks.baseUrl}/api/video/providers/status`, { headers });
      expect(response.status).toBe(503);
      expect(await response.json()).toMatchObject({ code: 'unavailable' });
    } finally {
      await jwks.stop();
    }
  });
});

/** A port nothing listens on. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  return typeof address === 'object' && address ? address.port : 0;
}
