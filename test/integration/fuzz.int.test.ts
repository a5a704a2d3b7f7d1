import http2 from 'node:http2';
import { create, type DescField, type DescMessage } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { VideoService } from '../../gen/video/v1/video_service_pb.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { appointmentId, type Protocol, slot, videoClient } from '../support/clients.js';
import { jpeg, png } from '../support/images.js';

/**
 * Property-based fuzzing of every RPC: random and malformed inputs built from each
 * request's descriptor (so a new RPC or field is covered on its own), random callers,
 * every protocol, and raw garbage bodies. The service must never answer INTERNAL or
 * UNKNOWN, never crash, and still serve afterwards.
 */
const CALLS = 10_000;
const CONCURRENCY = 16;
let t: TestApp;
const ids: string[] = [];

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
});
afterAll(async () => {
  await t?.stop();
});

const text = fc.oneof(
  fc.string(),
  fc.string({ unit: 'grapheme', maxLength: 50 }),
  fc.string({ minLength: 200, maxLength: 5000 }),
  fc.constantFrom(
    '',
    ' ',
    '\u0000',
    '../../etc/passwd',
    "'; drop table consultation; --",
    'doc-fuzz',
    'pat-fuzz',
  ),
  fc.uuid(),
  fc.constant('consultation-id-placeholder'),
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
        return fc.integer({ min: -3, max: 12 });
      case 'message':
        if (field.message.typeName === 'google.protobuf.Timestamp') {
          return fc.record({
            seconds: fc.bigInt({ min: -(2n ** 40n), max: 2n ** 40n }),
            nanos: fc.integer({ min: -5, max: 1_000_000_005 }),
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
        return text.map((s) => (s === 'consultation-id-placeholder' ? (ids[0] ?? s) : s));
      case 12: // bytes
        return bytes;
      case 13: // uint32
        return fc.oneof(fc.integer({ min: 0, max: 200 }), fc.constant(0xffffffff));
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

const caller = fc.record({
  role: fc.constantFrom('patient', 'doctor', 'nurse', 'clinic_admin', 'service' as const),
  user: fc.constantFrom('doc-fuzz', 'pat-fuzz', 'someone', 'x'),
  clinic: fc.constantFrom('clinic-1', 'clinic-2'),
  protocol: fc.constantFrom<Protocol>('connect-json', 'connect-binary', 'grpc', 'grpc-web'),
});
const call = fc.record({
  method: fc.constantFrom(...VideoService.methods),
  caller,
  seed: fc.integer(),
});

it(`answers ${CALLS} random calls to every RPC without INTERNAL or a crash`, async () => {
  // More than CALLS, since JSON clients cannot even encode some (out-of-range timestamps).
  const samples = fc.sample(call, Math.round(CALLS * 1.1));
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
      const [init] = fc.sample(requestOf(method.input), { seed, numRuns: 1 });
      let code = 'ok';
      try {
        const input = create(method.input, init as never);
        await (client as unknown as Record<string, (i: unknown) => Promise<unknown>>)[
          method.localName
        ]!(input);
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
  console.log(`fuzz: ${samples.length} calls`, Object.fromEntries(tally));
  expect(bad).toEqual([]);
  const sent = [...tally].filter(([code]) => code !== 'not sent').reduce((a, [, n]) => a + n, 0);
  expect(sent).toBeGreaterThanOrEqual(CALLS);
}, 300_000);

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
      const { status, message } = await new Promise<{ status?: string; message?: string }>(
        (resolve, reject) => {
          const stream = session.request({
            ':method': 'POST',
            ':path': path,
            'content-type': 'application/grpc',
            te: 'trailers',
            ...headers,
          });
          const seen: { status?: string; message?: string } = {};
          const read = (h: http2.IncomingHttpHeaders) => {
            if (h['grpc-status'] !== undefined) seen.status = String(h['grpc-status']);
            if (h['grpc-message'] !== undefined) {
              seen.message = decodeURIComponent(String(h['grpc-message']));
            }
          };
          stream.on('response', read);
          stream.on('trailers', read);
          stream.on('data', () => {});
          stream.on('end', () => resolve(seen));
          stream.on('error', reject);
          stream.end(body);
        },
      );
      expect(status, message).not.toBe('2');
      expect(status, message).not.toBe('13');
    }
  } finally {
    session.close();
  }
  expect((await fetch(`${t.baseUrl}/readyz`)).status).toBe(200);
  const service = videoClient(t.baseUrl, t.token('doctor', 'doc-fuzz'));
  await expect(service.getConsultationStatus({ consultationId: ids[0]! })).resolves.toBeDefined();
});
