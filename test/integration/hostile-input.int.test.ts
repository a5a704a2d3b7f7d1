import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { brotliCompressSync, gzipSync } from 'node:zlib';
import { create, toBinary } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import * as grpc from '@grpc/grpc-js';
import jwt from 'jsonwebtoken';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConsultationStatus } from '../../gen/video/v1/consultation_pb.js';
import {
  ShareMedicalImageRequestSchema,
  TechnicalIssueType,
} from '../../gen/video/v1/video_service_pb.js';
import { createTokenVerifier } from '../../src/auth/jwt.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { appointmentId, type Protocol, slot, videoClient } from '../support/clients.js';

/**
 * Input that used to reach PostgreSQL or connect-es's decoder and answer INTERNAL: NUL
 * and other control characters, forged page tokens, an unreadable Connect GET message,
 * claims longer than the columns, unknown enum names, absurd slots, tokens that never
 * expire. Each must answer a client error naming what is wrong.
 */
const SECRET = 'hostile-input-test-secret-of-32-characters';
let t: TestApp;
let id: string;

beforeAll(async () => {
  t = await startTestApp({ AUTH_JWT_SECRET: SECRET, MAX_IMAGE_BYTES: '1024' });
  const { consultation } = await videoClient(
    t.baseUrl,
    t.token('service', 'svc'),
  ).scheduleConsultation({
    appointmentId: appointmentId('hostile'),
    doctorId: 'doc-h',
    patientId: 'pat-h',
    ...slot(5),
  });
  id = consultation!.id;
});
afterAll(async () => {
  await t?.stop();
});

const as = (role: Parameters<TestApp['token']>[0], user: string, protocol?: Protocol) =>
  videoClient(t.baseUrl, t.token(role, user), protocol);

/** `code: message` of a call, or `ok`. */
async function outcome(call: Promise<unknown>): Promise<string> {
  return call.then(
    () => 'ok',
    (error: unknown) => {
      const e = ConnectError.from(error);
      return `${Code[e.code]}: ${e.rawMessage}`;
    },
  );
}

/** A POST of a raw Connect JSON body: status and the error body. */
async function postJson(method: string, body: string, token = t.token('clinic_admin', 'adm')) {
  const res = await fetch(`${t.baseUrl}/video.v1.VideoService/${method}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body,
  });
  return { status: res.status, body: (await res.json()) as { code?: string; message?: string } };
}

describe('NUL and other control characters', () => {
  for (const protocol of ['connect-json', 'connect-binary', 'grpc', 'grpc-web'] as const) {
    it(`refuses them in free text and filters over ${protocol}, naming the field`, async () => {
      const patient = as('patient', 'pat-h', protocol);
      const admin = as('clinic_admin', 'adm', protocol);
      const issue = { consultationId: id, issueType: TechnicalIssueType.AUDIO };
      expect(
        await outcome(patient.reportTechnicalIssue({ ...issue, description: 'PHI\u0000x' })),
      ).toBe(
        'InvalidArgument: description: must not contain control characters other than tab and newline',
      );
      expect(
        await outcome(patient.reportTechnicalIssue({ ...issue, description: 'a\u001b[31m' })),
      ).toMatch(/^InvalidArgument: description: /);
      expect(await outcome(admin.listAuditEntries({ action: 'consultation.read\u0000' }))).toMatch(
        /^InvalidArgument: action: /,
      );
      expect(await outcome(admin.listAuditEntries({ actorId: 'x\u0000' }))).toMatch(
        /^InvalidArgument: actor_id: /,
      );
      expect(
        await outcome(
          admin.cancelConsultation({ target: { case: 'appointmentId', value: 'a\u0000' } }),
        ),
      ).toMatch(/^InvalidArgument: appointment_id: /);
      expect(
        await outcome(
          patient.shareMedicalImage({
            consultationId: id,
            content: new Uint8Array(8),
            contentType: 'image/png\u0000',
          }),
        ),
      ).toMatch(/^InvalidArgument: content_type: /);
      // Text with tabs, newlines and any valid Unicode is fine.
      expect(
        await outcome(
          patient.reportTechnicalIssue({ ...issue, description: 'no sound\n\tsince 10:00 — 😷' }),
        ),
      ).toBe('ok');
    });
  }

  it('refuses a lone surrogate sent as a JSON escape', async () => {
    const res = await postJson(
      'ReportTechnicalIssue',
      `{"consultationId":"${id}","issueType":"TECHNICAL_ISSUE_TYPE_AUDIO","description":"a\\ud800b"}`,
      t.token('patient', 'pat-h'),
    );
    // protobuf-es refuses it while parsing JSON; validation refuses it in every other path.
    expect(res).toMatchObject({ status: 400, body: { code: 'invalid_argument' } });
  });
});

describe('page tokens', () => {
  const admin = () => as('clinic_admin', 'adm');
  const unsigned = (payload: unknown) => Buffer.from(JSON.stringify(payload)).toString('base64url');

  it('pages with the tokens the service issued', async () => {
    await as('service', 'svc').scheduleConsultation({
      appointmentId: appointmentId('page'),
      doctorId: 'doc-h',
      patientId: 'pat-h',
      ...slot(90),
    });
    const history = await admin().listConsultationHistory({ pageSize: 1 });
    const audit = await admin().listAuditEntries({ pageSize: 1 });
    expect(history.nextPageToken).not.toBe('');
    expect(audit.nextPageToken).not.toBe('');
    await expect(
      admin().listAuditEntries({ pageSize: 1, pageToken: audit.nextPageToken }),
    ).resolves.toBeDefined();
    // A token pages only the list and the filters it was issued for.
    expect(await outcome(admin().listConsultationHistory({ pageToken: audit.nextPageToken }))).toBe(
      'InvalidArgument: page_token: was issued for other filters',
    );
    expect(
      await outcome(
        admin().listAuditEntries({ pageSize: 1, pageToken: audit.nextPageToken, action: 'x' }),
      ),
    ).toBe('InvalidArgument: page_token: was issued for other filters');
  });

  it('refuses forged tokens, extreme times and ids that are no UUID, in both lists', async () => {
    // The unsigned tokens of before, with the fingerprint anyone could compute (a plain
    // hash of the caller and the filters), and signed-looking ones with a made-up MAC.
    const hash = (filters: unknown[]) =>
      createHash('sha256').update(JSON.stringify(filters)).digest('base64url').slice(0, 16);
    const lists = [
      {
        call: (pageToken: string) => admin().listConsultationHistory({ pageToken }),
        fingerprint: hash(['adm', [], undefined, undefined]),
      },
      {
        call: (pageToken: string) => admin().listAuditEntries({ pageToken }),
        fingerprint: hash(['adm', '', '', '', undefined, undefined]),
      },
    ];
    const forgeries = (fingerprint: string) => [
      unsigned([1e300, id, fingerprint]),
      unsigned([-8.64e15, id, fingerprint]),
      unsigned([8.64e15, id, fingerprint]),
      unsigned([0, 'not-a-uuid', fingerprint]),
      unsigned([0, `${id}\u0000`, fingerprint]),
      unsigned([1, 1e300, id, fingerprint]),
      `${unsigned([1, 0, id, fingerprint])}.${'A'.repeat(43)}`,
      '!!!',
      'x'.repeat(512),
    ];
    const forged = forgeries('');
    const codes: string[] = [];
    for (const list of lists) {
      for (const pageToken of forgeries(list.fingerprint)) {
        codes.push(await outcome(list.call(pageToken)));
      }
    }
    expect(codes).toEqual(
      [...forged, ...forged].map(
        () => 'InvalidArgument: page_token: is not a token this service issued',
      ),
    );
  });

  it('accepts a token issued by another copy configured with the same key', async () => {
    const first = await admin().listConsultationHistory({ pageSize: 1 });
    const copy = await startTestApp({ AUTH_JWT_SECRET: SECRET });
    try {
      const other = videoClient(copy.baseUrl, copy.token('clinic_admin', 'adm'));
      // The copy has a database of its own: the cursor is read, and pages nothing there.
      expect(
        await outcome(
          other.listConsultationHistory({ pageSize: 1, pageToken: first.nextPageToken }),
        ),
      ).toBe('ok');
    } finally {
      await copy.stop();
    }
  });
});

describe('Connect GET', () => {
  it('answers a message it cannot decode with INVALID_ARGUMENT', async () => {
    const headers = { authorization: `Bearer ${t.token('doctor', 'doc-h')}` };
    const url = (query: string) =>
      `${t.baseUrl}/video.v1.VideoService/GetConsultationStatus?connect=v1&${query}`;
    for (const query of [
      'encoding=proto&base64=1&message=!!!',
      'encoding=json&base64=1&message=%25%25%25',
      'encoding=proto&base64=1&message=a',
    ]) {
      const res = await fetch(url(query), { headers });
      expect({ query, status: res.status, body: await res.json() }).toEqual({
        query,
        status: 400,
        body: { code: 'invalid_argument', message: 'message: is not valid base64' },
      });
    }
    const good = Buffer.from(JSON.stringify({ consultationId: id })).toString('base64url');
    const res = await fetch(url(`encoding=json&base64=1&message=${good}`), { headers });
    expect(res.status).toBe(200);
  });
});

describe('compressed requests', () => {
  it('answers a truncated gzip or brotli body with INVALID_ARGUMENT, GET and POST', async () => {
    const json = Buffer.from(JSON.stringify({ consultationId: id }));
    const truncated = {
      gzip: gzipSync(json).subarray(0, 12),
      br: brotliCompressSync(json).subarray(0, 3),
    };
    const headers = { authorization: `Bearer ${t.token('doctor', 'doc-h')}` };
    const path = `${t.baseUrl}/video.v1.VideoService/GetConsultationStatus`;
    for (const [encoding, body] of Object.entries(truncated)) {
      const get = await fetch(
        `${path}?connect=v1&encoding=json&compression=${encoding}&base64=1&message=${body.toString('base64url')}`,
        { headers },
      );
      const post = await fetch(path, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json', 'content-encoding': encoding },
        body,
      });
      for (const res of [get, post]) {
        expect({ encoding, status: res.status, body: await res.json() }).toEqual({
          encoding,
          status: 400,
          body: { code: 'invalid_argument', message: 'decompression failed' },
        });
      }
    }
  });
});

describe('enum values and slots', () => {
  it('refuses enum names the proto does not know, and unknown fields, over JSON', async () => {
    expect(
      await postJson('ListConsultationHistory', '{"statuses":["CONSULTATION_STATUS_FOO"]}'),
    ).toMatchObject({ status: 400, body: { code: 'invalid_argument' } });
    const schedule = {
      appointmentId: appointmentId('enum'),
      doctorId: 'doc-h',
      patientId: 'pat-h',
      scheduledStart: new Date(Date.now() + 60_000).toISOString(),
      scheduledEnd: new Date(Date.now() + 31 * 60_000).toISOString(),
    };
    expect(
      await postJson(
        'ScheduleConsultation',
        JSON.stringify({ ...schedule, provider: 'PROVIDER_ZOOM' }),
        t.token('service', 'svc'),
      ),
    ).toMatchObject({ status: 400, body: { code: 'invalid_argument' } });
    expect(
      await postJson('ListConsultationHistory', '{"statusses":["CONSULTATION_STATUS_ENDED"]}'),
    ).toMatchObject({ status: 400, body: { code: 'invalid_argument' } });
    // Unknown numbers (JSON or binary) are kept by protobuf-es and refused by validation.
    expect(await postJson('ListConsultationHistory', '{"statuses":[99]}')).toEqual({
      status: 400,
      body: { code: 'invalid_argument', message: 'statuses[0]: is not a known value' },
    });
    expect(
      await outcome(
        as('clinic_admin', 'adm', 'connect-binary').listConsultationHistory({
          statuses: [ConsultationStatus.ENDED, 42 as ConsultationStatus],
        }),
      ),
    ).toBe('InvalidArgument: statuses[1]: is not a known value');
    // Known names still work.
    expect(
      await postJson('ListConsultationHistory', '{"statuses":["CONSULTATION_STATUS_ENDED"]}'),
    ).toMatchObject({ status: 200 });
  });

  it('refuses slots already over, too far ahead, or in the years 0001 and 9999', async () => {
    const service = as('service', 'svc', 'connect-binary');
    const at = (start: Date, minutes = 30) =>
      service.scheduleConsultation({
        appointmentId: appointmentId('slot'),
        doctorId: 'doc-h',
        patientId: 'pat-h',
        scheduledStart: { seconds: BigInt(Math.floor(start.getTime() / 1000)), nanos: 0 },
        scheduledEnd: {
          seconds: BigInt(Math.floor(start.getTime() / 1000) + minutes * 60),
          nanos: 0,
        },
      });
    expect(await outcome(at(new Date(Date.now() - 3_600_000)))).toBe(
      'InvalidArgument: scheduled_end: must be in the future',
    );
    expect(await outcome(at(new Date('0001-01-01T00:00:00Z')))).toMatch(
      /^InvalidArgument: scheduled_start: /,
    );
    expect(await outcome(at(new Date('9999-12-31T00:00:00Z')))).toMatch(
      /^InvalidArgument: scheduled_start: /,
    );
    expect(await outcome(at(new Date(Date.now() + 800 * 86_400_000)))).toMatch(
      /^InvalidArgument: scheduled_start: /,
    );
    expect(await outcome(at(new Date(Date.now() + 600 * 86_400_000)))).toBe('ok');
  });
});

describe('bearer tokens', () => {
  const call = (token: string) => outcome(videoClient(t.baseUrl, token).getProviderStatus({}));
  const sign = (claims: object, options: jwt.SignOptions = {}) =>
    jwt.sign(claims, SECRET, { algorithm: 'HS256', ...options });

  it('refuses a clinic_id or sub longer than the columns, or with other characters', async () => {
    const claims = { sub: 'doc-h', role: 'clinic_admin', clinic_id: 'clinic-1' };
    for (const clinicId of ['c'.repeat(65), 'c'.repeat(128), 'clinic\u00001', 'clinic 1']) {
      expect(
        await outcome(
          videoClient(
            t.baseUrl,
            sign({ ...claims, clinic_id: clinicId }, { expiresIn: 600 }),
          ).listAuditEntries({}),
        ),
      ).toBe('Unauthenticated: token has no valid clinic_id claim');
    }
    expect(await call(sign({ ...claims, sub: 'u'.repeat(129) }, { expiresIn: 600 }))).toBe(
      'Unauthenticated: token has no valid sub claim',
    );
    expect(await call(sign({ ...claims, clinic_id: 'c'.repeat(64) }, { expiresIn: 600 }))).toBe(
      'ok',
    );
  });

  it('refuses tokens without exp, living past the cap, or issued in the future', async () => {
    const claims = { sub: 'doc-h', role: 'doctor', clinic_id: 'clinic-1' };
    const now = Math.floor(Date.now() / 1000);
    expect(await call(sign(claims))).toBe('Unauthenticated: token has no exp claim');
    expect(await call(sign({ ...claims, exp: Math.floor(Date.UTC(2200, 0, 1) / 1000) }))).toBe(
      'Unauthenticated: token lifetime exceeds 86400 seconds',
    );
    expect(await call(sign({ ...claims, iat: now + 3600, exp: now + 7200 }))).toBe(
      'Unauthenticated: token issued in the future',
    );
    expect(await call(sign(claims, { expiresIn: 86_400 }))).toBe('ok');
  });

  it('npm run token mints a token the service accepts', async () => {
    const root = fileURLToPath(new URL('../..', import.meta.url));
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', 'scripts/token.ts', '--role', 'clinic_admin', '--user', 'a1'],
      { cwd: root, env: { ...process.env, AUTH_JWT_SECRET: SECRET } },
    );
    const token = stdout.trim();
    await expect(
      createTokenVerifier({
        hs256Secret: SECRET,
        issuer: undefined,
        audience: undefined,
        clockSkewSeconds: 30,
      }).verify(token),
    ).resolves.toEqual({
      userId: 'a1',
      role: 'clinic_admin',
      clinicId: 'c1',
      expiresAt: expect.any(Date),
    });
    expect(await call(token)).toBe('ok');
  });
});

describe('result codes', () => {
  it('are spelt as on the wire in /metrics labels', async () => {
    await as('patient', 'pat-h')
      .endConsultation({ consultationId: id })
      .catch(() => {});
    await as('patient', 'pat-h')
      .getConsultationStatus({ consultationId: 'nope' })
      .catch(() => {});
    const text = await (await fetch(`${t.baseUrl}/metrics`)).text();
    const codes = new Set(
      [...text.matchAll(/^rpc_server_duration_seconds_count\{.*code="([^"]+)"/gm)].map((m) => m[1]),
    );
    expect(codes).toContain('permission_denied');
    expect(codes).toContain('invalid_argument');
    for (const code of codes) expect(code).toMatch(/^[a-z]+(_[a-z]+)*$/);
    expect(codes).not.toContain('permissiondenied');
  });

  /**
   * gRPC percent-encodes grpc-message only outside printable ASCII (and `%`); connect-es
   * encodes with encodeURIComponent, and grpc-js decodes with decodeURI, which leaves
   * `%3A` as it is: grpc-js users read `content%3A must be…`. Python grpcio reads it right.
   * The server re-encodes grpc-message the spec's way (src/http/server.ts).
   */
  it('reach grpc-js clients as sent', async () => {
    const client = new grpc.Client(
      t.baseUrl.replace('http://', ''),
      grpc.credentials.createInsecure(),
    );
    try {
      const metadata = new grpc.Metadata();
      metadata.set('authorization', `Bearer ${t.token('patient', 'pat-h')}`);
      const request = toBinary(
        ShareMedicalImageRequestSchema,
        create(ShareMedicalImageRequestSchema, {
          consultationId: id,
          content: new Uint8Array(2048),
        }),
      );
      const error = await new Promise<grpc.ServiceError | null>((resolve) =>
        client.makeUnaryRequest(
          '/video.v1.VideoService/ShareMedicalImage',
          (b: Buffer) => b,
          (b: Buffer) => b,
          Buffer.from(request),
          metadata,
          (e) => resolve(e),
        ),
      );
      expect(error?.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(error?.details).toBe('content: must be at most 1024 bytes');
    } finally {
      client.close();
    }
  });
});
