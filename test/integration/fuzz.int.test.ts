import { createHash } from 'node:crypto';
import http2 from 'node:http2';
import { create, type DescField, type DescMessage, type DescMethod } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError } from '@connectrpc/connect';
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ConsultationStatus } from '../../gen/video/v1/consultation_pb.js';
import { TechnicalIssueType, VideoService } from '../../gen/video/v1/video_service_pb.js';
import type { Role } from '../../src/domain/access.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { appointmentId, type Protocol, slot, videoClient } from '../support/clients.js';
import { jpeg, png } from '../support/images.js';

/**
 * Property-based fuzzing of every RPC: random and malformed inputs built from each
 * request's descriptor (so a new RPC or field is covered on its own), random callers,
 * every protocol, and raw garbage bodies. Strings include NUL, other C0 and C1 controls
 * and lone surrogates; page tokens are forged, altered or genuine; numbers reach the
 * extremes of their types. The service must never answer INTERNAL or UNKNOWN, never
 * crash, and still serve afterwards.
 */
const CALLS = 10_000;
/** Calls aimed at the paging RPCs as the roles that reach their queries. */
const PAGING_CALLS = 2_000;
/** Valid requests with one field made hostile, so that it gets past the other rules. */
const MUTANT_CALLS = 3_000;
const CONCURRENCY = 16;
let t: TestApp;
const ids: string[] = [];
/** Page tokens the service issued, for the fuzzer to replay and alter. */
const genuineTokens: string[] = [];

beforeAll(async () => {
  t = await startTestApp();
  const service = videoClient(t.baseUrl, t.token('service', 'svc'));
  for (let i = 0; i < 5; i++) {
    const { consultation } = await service.scheduleConsultation({
      appointmentId: appointmentId('fuzz'),
      doctorId: 'doc-fuzz',
      patientId: 'pat-fuzz',
      ...slot(5),
    });
    ids.push(consultation!.id);
  }
  const admin = videoClient(t.baseUrl, t.token('clinic_admin', 'adm'));
  genuineTokens.push(
    (await admin.listConsultationHistory({ pageSize: 1 })).nextPageToken,
    (await admin.listAuditEntries({ pageSize: 1 })).nextPageToken,
    (await service.listConsultationHistory({ pageSize: 2 })).nextPageToken,
  );
});
afterAll(async () => {
  await t?.stop();
});

/** One character PostgreSQL, a terminal or a log reader may choke on. */
const control = fc
  .oneof(
    fc.integer({ min: 0, max: 0x1f }),
    fc.integer({ min: 0x7f, max: 0x9f }),
    fc.integer({ min: 0xd800, max: 0xdfff }), // a lone surrogate
    fc.constantFrom(0, 0x2028, 0x202e, 0xfeff, 0xfffe, 0xffff),
  )
  .map((code) => String.fromCharCode(code));
/** A plausible value with hostile characters somewhere in it. */
const tainted = fc
  .tuple(
    fc.constantFrom('doc-fuzz', 'pat-fuzz', 'consultation.read', 'a-1', 'image/png', 'x'),
    control,
    fc.nat(),
  )
  .map(([base, bad, at]) => {
    const i = at % (base.length + 1);
    return `${base.slice(0, i)}${bad}${base.slice(i)}`;
  });
const text = fc.oneof(
  fc.string(),
  fc.string({ unit: 'grapheme', maxLength: 50 }),
  fc.string({ unit: 'binary', maxLength: 50 }),
  fc.string({ minLength: 200, maxLength: 5000 }),
  fc.string({ unit: control, minLength: 1, maxLength: 10 }),
  tainted,
  fc.constantFrom(
    '',
    ' ',
    '\u0000',
    'PHI\u0000',
    '\ud800',
    '\udc00x',
    '../../etc/passwd',
    "'; drop table consultation; --",
    'doc-fuzz',
    'pat-fuzz',
  ),
  fc.uuid(),
  fc.constant('consultation-id-placeholder'),
);

/** Page tokens: genuine, altered, replayed elsewhere, or forged in the old unsigned form. */
const unsignedToken = (payload: unknown) =>
  Buffer.from(JSON.stringify(payload)).toString('base64url');
const extremeNumber = fc.oneof(
  fc.constantFrom(
    1e300,
    -1e300,
    8.64e15,
    -8.64e15,
    8.64e15 + 1,
    Number.MAX_SAFE_INTEGER,
    Number.MIN_SAFE_INTEGER,
    0.5,
    -0,
    253402300800000,
    -62135596800001,
  ),
  fc.double(),
  fc.integer(),
);
const pageToken = fc.oneof(
  fc.constant('genuine-token-placeholder'),
  fc.tuple(fc.nat(), fc.nat(), fc.constantFrom('A', '_', '-', '.', '0')).map(([which, at, c]) => {
    const token = genuineTokens[which % Math.max(1, genuineTokens.length)] ?? '';
    const i = at % (token.length + 1);
    return `${token.slice(0, i)}${c}${token.slice(i + 1)}`;
  }),
  fc
    .tuple(extremeNumber, fc.oneof(fc.uuid(), text), fc.string({ maxLength: 20 }))
    .map(([time, id, fingerprint]) => unsignedToken([time, id, fingerprint])),
  fc
    .tuple(extremeNumber, fc.oneof(fc.uuid(), text), fc.string({ maxLength: 20 }), fc.nat())
    .map(
      ([time, id, fingerprint, mac]) =>
        `${unsignedToken([1, time, id, fingerprint])}.${Buffer.alloc(32, mac % 256).toString('base64url')}`,
    ),
  fc.base64String({ maxLength: 600 }),
  fc.stringMatching(/^[A-Za-z0-9_-]{1,200}\.[A-Za-z0-9_-]{43}$/),
  text,
);
const bytes = fc.oneof(
  fc.uint8Array({ maxLength: 2048 }),
  fc.constant(png()),
  fc.constant(jpeg()),
  fc.constant(jpeg().subarray(0, 10)),
  fc.constant(Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3])),
  fc.constant(new TextEncoder().encode('GIF89a not really')),
);

/** An arbitrary value for one field of a request message. */
function fieldValue(field: DescField): fc.Arbitrary<unknown> {
  const single = (): fc.Arbitrary<unknown> => {
    switch (field.fieldKind) {
      case 'scalar':
      case 'list':
      case 'map':
        break;
      case 'enum':
        return fc.oneof(fc.integer({ min: -3, max: 12 }), fc.constantFrom(-(2 ** 31), 2 ** 31 - 1));
      case 'message':
        if (field.message.typeName === 'google.protobuf.Timestamp') {
          return fc.record({
            seconds: fc.oneof(
              fc.bigInt({ min: -(2n ** 40n), max: 2n ** 40n }),
              // Around the ends of the API's range (years 1 and 9999), and of int64.
              fc.constantFrom(
                -62135596800n,
                -62135596801n,
                253402300799n,
                253402300800n,
                2n ** 63n - 1n,
                -(2n ** 63n),
                0n,
              ),
              // Around now: slots just over, just starting, two years ahead.
              fc
                .integer({ min: -3 * 86_400, max: 800 * 86_400 })
                .map((offset) => BigInt(Math.floor(Date.now() / 1000) + offset)),
            ),
            nanos: fc.oneof(
              fc.integer({ min: -5, max: 1_000_000_005 }),
              fc.constantFrom(-(2 ** 31), 2 ** 31 - 1),
            ),
          });
        }
        return fc.constant(undefined);
    }
    const scalar =
      field.fieldKind === 'list'
        ? field.scalar
        : field.fieldKind === 'scalar'
          ? field.scalar
          : undefined;
    switch (scalar) {
      case 9: // string
        if (field.name === 'page_token') {
          return pageToken.map((s) =>
            s === 'genuine-token-placeholder' ? (genuineTokens[0] ?? s) : s,
          );
        }
        return text.map((s) => (s === 'consultation-id-placeholder' ? (ids[0] ?? s) : s));
      case 12: // bytes
        return bytes;
      case 13: // uint32
        return fc.oneof(fc.integer({ min: 0, max: 200 }), fc.constantFrom(0xffffffff, 2 ** 31));
      case 8: // bool
        return fc.boolean();
      default:
        return fc.integer({ min: -1000, max: 1000 });
    }
  };
  if (field.fieldKind === 'list') {
    if (field.listKind === 'enum')
      return fc.array(fc.integer({ min: -3, max: 12 }), { maxLength: 8 });
    return fc.array(single(), { maxLength: 4 });
  }
  return single();
}

/** An arbitrary request for a message type, field by field (oneofs pick one member). */
function requestOf(desc: DescMessage): fc.Arbitrary<Record<string, unknown>> {
  const plain = desc.fields.filter((f) => !f.oneof);
  const record: Record<string, fc.Arbitrary<unknown>> = {};
  for (const field of plain)
    record[field.localName] = fc.option(fieldValue(field), { nil: undefined });
  const oneofs = desc.oneofs.map((oneof) =>
    fc.oneof(
      fc.constant({ case: undefined }),
      ...oneof.fields.map((f) => fieldValue(f).map((value) => ({ case: f.localName, value }))),
    ),
  );
  return fc.tuple(fc.record(record), fc.tuple(...oneofs)).map(([fields, cases]) => {
    const init: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(fields)) if (v !== undefined) init[k] = v;
    desc.oneofs.forEach((oneof, i) => {
      init[oneof.localName] = cases[i];
    });
    return init;
  });
}

type Sample = {
  method: DescMethod;
  caller: { role: Role; user: string; clinic: string; protocol: Protocol };
  seed: number;
};

const caller = fc.record({
  role: fc.constantFrom('patient', 'doctor', 'nurse', 'clinic_admin', 'service' as const),
  user: fc.constantFrom('doc-fuzz', 'pat-fuzz', 'someone', 'x'),
  clinic: fc.constantFrom('clinic-1', 'clinic-2'),
  protocol: fc.constantFrom<Protocol>('connect-json', 'connect-binary', 'grpc', 'grpc-web'),
});
const call: fc.Arbitrary<Sample> = fc.record({
  method: fc.constantFrom(...VideoService.methods),
  caller,
  seed: fc.integer(),
});

/** Runs the calls CONCURRENCY at a time: how many answered each code, and any INTERNAL. */
async function hammer(
  samples: readonly Sample[],
  requestFor: (
    desc: DescMessage,
    caller: Sample['caller'],
  ) => fc.Arbitrary<Record<string, unknown>> = requestOf,
) {
  const tally = new Map<string, number>();
  const bad: string[] = [];
  const clients = new Map<string, ReturnType<typeof videoClient>>();
  let next = 0;
  async function worker() {
    while (next < samples.length) {
      const { method, caller: who, seed } = samples[next++]!;
      const key = `${who.role}/${who.user}/${who.clinic}/${who.protocol}`;
      let client = clients.get(key);
      if (!client) {
        client = videoClient(t.baseUrl, t.token(who.role, who.user, who.clinic), who.protocol);
        clients.set(key, client);
      }
      const [init] = fc.sample(requestFor(method.input, who), { seed, numRuns: 1 });
      let code = 'ok';
      try {
        const input = create(method.input, init as never);
        const rpc = (client as unknown as Record<string, (i: unknown, o?: unknown) => unknown>)[
          method.localName
        ]!;
        if (method.methodKind === 'server_streaming') {
          // A stream's answer (or refusal) is its first message; then it is closed.
          const stop = new AbortController();
          try {
            for await (const _ of rpc(input, { signal: stop.signal }) as AsyncIterable<unknown>) {
              stop.abort();
              break;
            }
          } finally {
            stop.abort();
          }
        } else {
          await rpc(input);
        }
      } catch (error) {
        const e = ConnectError.from(error);
        code = Code[e.code];
        // Refused by the client itself before sending: JSON has no encoding for it.
        if (/^cannot encode/.test(e.rawMessage)) code = 'not sent';
        if ((e.code === Code.Internal || e.code === Code.Unknown) && code !== 'not sent') {
          bad.push(
            `${method.name} ${who.protocol}: ${e.rawMessage} ${JSON.stringify(init, (_k, v) => (typeof v === 'bigint' ? String(v) : v)).slice(0, 300)}`,
          );
        }
      }
      tally.set(code, (tally.get(code) ?? 0) + 1);
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const sent = [...tally].filter(([code]) => code !== 'not sent').reduce((a, [, n]) => a + n, 0);
  return { tally: Object.fromEntries(tally), bad, sent };
}

it(`answers ${CALLS} random calls to every RPC without INTERNAL or a crash`, async () => {
  // More than CALLS, since JSON clients cannot even encode some (out-of-range timestamps).
  const { tally, bad, sent } = await hammer(fc.sample(call, Math.round(CALLS * 1.1)));
  console.log(`fuzz: ${sent} calls sent`, tally);
  expect(bad).toEqual([]);
  expect(sent).toBeGreaterThanOrEqual(CALLS);
}, 300_000);

it(`answers ${PAGING_CALLS} forged, altered and extreme paging calls without INTERNAL`, async () => {
  // As the callers whose calls reach the queries: a clinic admin (both lists) and the
  // participants (history), so that the page token and the time filters are really read.
  const paging = fc.record({
    method: fc.constantFrom(
      VideoService.method.listConsultationHistory,
      VideoService.method.listAuditEntries,
    ),
    caller: fc.record({
      role: fc.constantFrom('clinic_admin', 'clinic_admin', 'doctor', 'patient' as const),
      user: fc.constantFrom('adm', 'doc-fuzz', 'pat-fuzz'),
      clinic: fc.constant('clinic-1'),
      protocol: fc.constantFrom<Protocol>('connect-json', 'connect-binary', 'grpc'),
    }),
    seed: fc.integer(),
  });
  // Mostly valid filters, so that the token is what is tried; sometimes extreme ones.
  const timestamp = fc.option(
    fc
      .oneof(
        fc.date({ min: new Date('2000-01-01'), max: new Date('2100-01-01'), noInvalidDate: true }),
        fc.date({ noInvalidDate: true }),
      )
      .map((d) => ({ seconds: BigInt(Math.floor(d.getTime() / 1000)), nanos: 0 })),
    { nil: undefined, freq: 2 },
  );
  const pagingRequest = (desc: DescMessage) => {
    const fields: Record<string, fc.Arbitrary<unknown>> = {
      pageSize: fc.oneof(fc.integer({ min: 0, max: 100 }), fc.constantFrom(0xffffffff, 101)),
      pageToken: pageToken.map((s) =>
        s === 'genuine-token-placeholder' ? (genuineTokens[0] ?? s) : s,
      ),
    };
    if (desc.typeName === VideoService.method.listAuditEntries.input.typeName) {
      fields.from = timestamp;
      fields.to = timestamp;
      fields.actorId = fc.constantFrom('', 'adm', 'doc-fuzz');
      fields.action = fc.constantFrom('', 'consultation.read', 'history.list');
    } else {
      fields.scheduledFrom = timestamp;
      fields.scheduledTo = timestamp;
      fields.statuses = fc.array(fc.integer({ min: 0, max: 6 }), { maxLength: 3 });
    }
    return fc.record(fields, { requiredKeys: [] }) as fc.Arbitrary<Record<string, unknown>>;
  };
  const { tally, bad, sent } = await hammer(
    fc.sample(paging, Math.round(PAGING_CALLS * 1.2)),
    pagingRequest,
  );
  console.log(`fuzz (paging): ${sent} calls sent`, tally);
  expect(bad).toEqual([]);
  expect(sent).toBeGreaterThanOrEqual(PAGING_CALLS);
}, 300_000);

/** A valid request of each RPC for the fuzz callers (clinic-1), before one field is spoilt. */
function validRequest(method: DescMethod, n: number): Record<string, unknown> {
  const consultationId = ids[n % ids.length] ?? '';
  const start = new Date(Date.now() + 5 * 60_000);
  switch (method.name) {
    case 'ScheduleConsultation':
      return {
        appointmentId: appointmentId('mutant'),
        doctorId: 'doc-fuzz',
        patientId: 'pat-fuzz',
        scheduledStart: timestampFromDate(start),
        scheduledEnd: timestampFromDate(new Date(start.getTime() + 30 * 60_000)),
      };
    case 'CancelConsultation':
      return { target: { case: 'appointmentId', value: 'no-such-appointment' } };
    case 'ListWaitingRoom':
      return { doctorId: 'doc-fuzz' };
    case 'ReportTechnicalIssue':
      return { consultationId, issueType: TechnicalIssueType.AUDIO, description: 'no sound' };
    case 'ShareMedicalImage':
      return { consultationId, content: png(), contentType: 'image/png' };
    case 'ListConsultationHistory':
      return { statuses: [ConsultationStatus.SCHEDULED], pageSize: 5 };
    case 'ListAuditEntries':
      return { actorId: 'adm', action: 'history.list', pageSize: 5 };
    case 'GetProviderStatus':
      return {};
    default:
      return { consultationId };
  }
}

/**
 * The unsigned page token of before, with the fingerprint the old code computed (a plain
 * hash of the caller and the filters of validRequest): anyone could forge these.
 */
function oldStyleToken(method: DescMethod, userId: string, time: unknown, id: unknown) {
  const filters =
    method.name === 'ListAuditEntries'
      ? [userId, 'adm', '', 'history.list', undefined, undefined]
      : [userId, ['scheduled'], undefined, undefined];
  const fingerprint = createHash('sha256')
    .update(JSON.stringify(filters))
    .digest('base64url')
    .slice(0, 16);
  return unsignedToken([time, id, fingerprint]);
}

it(`answers ${MUTANT_CALLS} valid calls with one hostile field without INTERNAL`, async () => {
  const mutant = fc.record({
    method: fc.constantFrom(...VideoService.methods),
    caller: fc.record({
      role: fc.constantFrom<Role>('clinic_admin', 'doctor', 'patient', 'service', 'nurse'),
      user: fc.constantFrom('adm', 'doc-fuzz', 'pat-fuzz', 'svc'),
      clinic: fc.constant('clinic-1'),
      protocol: fc.constantFrom<Protocol>('connect-json', 'connect-binary', 'grpc', 'grpc-web'),
    }),
    seed: fc.integer(),
  });
  // The caller's own role and user: doctors as doc-fuzz, patients as pat-fuzz.
  const samples = fc.sample(mutant, Math.round(MUTANT_CALLS * 1.1)).map((s) => ({
    ...s,
    caller: {
      ...s.caller,
      user:
        s.caller.role === 'doctor'
          ? 'doc-fuzz'
          : s.caller.role === 'patient'
            ? 'pat-fuzz'
            : s.caller.user,
    },
  }));
  const spoilt = (desc: DescMessage, who: Sample['caller']) => {
    const method = VideoService.methods.find((m) => m.input === desc)!;
    const fields = desc.fields;
    return fc
      .tuple(fc.nat(), fc.nat(), extremeNumber, fc.oneof(fc.uuid(), text))
      .chain(([n, which, time, id]) => {
        const base = validRequest(method, n);
        if (fields.length === 0) return fc.constant(base);
        const field = fields[which % fields.length]!;
        const hostile =
          field.name === 'page_token'
            ? fc.oneof(fc.constant(oldStyleToken(method, who.user, time, id)), pageToken)
            : fieldValue(field);
        return hostile.map((value) => {
          const init: Record<string, unknown> = { ...base };
          if (field.oneof) init[field.oneof.localName] = { case: field.localName, value };
          else init[field.localName] = value;
          return init;
        });
      });
  };
  const { tally, bad, sent } = await hammer(samples, spoilt);
  console.log(`fuzz (one hostile field): ${sent} calls sent`, tally);
  expect(bad).toEqual([]);
  expect(sent).toBeGreaterThanOrEqual(MUTANT_CALLS);
}, 300_000);

/**
 * What a garbage gRPC body may be answered with: undecodable (INVALID_ARGUMENT), a length
 * prefix beyond the size limit (RESOURCE_EXHAUSTED), or no request message at all in a
 * unary call (UNIMPLEMENTED, gRPC's code for a cardinality violation).
 */
const CLIENT_ERRORS = [Code.InvalidArgument, Code.ResourceExhausted, Code.Unimplemented];

/** What a raw gRPC call answered: where its status came, and how many message bytes. */
interface GrpcAnswer {
  httpStatus?: number;
  status?: string;
  message?: string;
  where?: 'trailers-only' | 'trailers';
  data: number;
}

it('answers garbage bodies in every protocol with a client error, and keeps serving', async () => {
  const path = '/video.v1.VideoService/GetConsultationStatus';
  const headers = { authorization: `Bearer ${t.token('doctor', 'doc-fuzz')}` };
  const garbage = fc.sample(fc.uint8Array({ maxLength: 512 }), 50);
  for (const body of garbage) {
    const json = await fetch(`${t.baseUrl}${path}`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json' },
      body,
    });
    expect(json.status).toBe(400);
    await json.arrayBuffer();
    const proto = await fetch(`${t.baseUrl}${path}`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/proto' },
      body,
    });
    // connect-es answers an undecodable body with INTERNAL; the server turns that into
    // INVALID_ARGUMENT (see undecodableBodiesAsInvalidArgument in src/http/server.ts).
    expect(proto.status).toBe(400);
    expect(await proto.json()).toMatchObject({ code: 'invalid_argument' });
  }
  // gRPC over HTTP/2 with broken length prefixes and truncated frames.
  const session = http2.connect(t.baseUrl);
  try {
    const bodies = [
      Buffer.from([0, 0, 0, 0, 99]),
      Buffer.from([1, 255, 255, 255, 255, 1]),
      ...garbage.slice(0, 20).map((b) => Buffer.from(b)),
    ];
    for (const body of bodies) {
      const answer = await new Promise<GrpcAnswer>((resolve, reject) => {
        const stream = session.request({
          ':method': 'POST',
          ':path': path,
          'content-type': 'application/grpc',
          te: 'trailers',
          ...headers,
        });
        const seen: GrpcAnswer = { data: 0 };
        const read =
          (where: 'trailers-only' | 'trailers') =>
          (h: http2.IncomingHttpHeaders, flags: number) => {
            if (where === 'trailers-only') {
              seen.httpStatus = Number(h[':status']);
              // Only a headers frame that ends the stream may carry the status.
              if ((flags & http2.constants.NGHTTP2_FLAG_END_STREAM) === 0) return;
            }
            if (h['grpc-status'] !== undefined) {
              seen.status = String(h['grpc-status']);
              seen.where = where;
            }
            if (h['grpc-message'] !== undefined) {
              seen.message = decodeURIComponent(String(h['grpc-message']));
            }
          };
        stream.on('response', read('trailers-only'));
        stream.on('trailers', read('trailers'));
        stream.on('data', (chunk: Buffer) => {
          seen.data += chunk.length;
        });
        stream.on('end', () => resolve(seen));
        stream.on('error', reject);
        stream.end(body);
      });
      // A gRPC answer: HTTP 200, and a status where gRPC puts it, always; no status at all
      // is no answer. A garbage body is the caller's fault: a client error with a reason,
      // never INTERNAL or UNKNOWN.
      const context = `${Buffer.from(body).toString('hex').slice(0, 40)}: ${JSON.stringify(answer)}`;
      expect(answer.httpStatus, context).toBe(200);
      expect(answer.status, context).toBeDefined();
      expect(CLIENT_ERRORS, context).toContain(Number(answer.status));
      expect(answer.message, context).toBeTruthy();
      expect(answer.data, context).toBe(0);
    }
  } finally {
    session.close();
  }
  expect((await fetch(`${t.baseUrl}/readyz`)).status).toBe(200);
  const service = videoClient(t.baseUrl, t.token('doctor', 'doc-fuzz'));
  await expect(service.getConsultationStatus({ consultationId: ids[0]! })).resolves.toBeDefined();
});

// Garbage gRPC-Web bodies (the status in a trailer frame): grpc-web-bodies.int.test.ts.
