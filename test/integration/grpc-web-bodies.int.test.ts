import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';
import { videoClient } from '../support/clients.js';

/**
 * gRPC-Web carries its status in a trailer frame at the end of the body, not in HTTP
 * trailers: a body the server cannot decode must still answer INVALID_ARGUMENT there,
 * never INTERNAL, as it does for Connect and gRPC.
 */
let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.stop();
});

/** The trailer frame (flag 0x80) of a gRPC-Web answer, as header lines. */
function trailerOf(body: Buffer): Record<string, string> {
  let offset = 0;
  while (offset + 5 <= body.length) {
    const flags = body[offset] ?? 0;
    const length = body.readUInt32BE(offset + 1);
    const data = body.subarray(offset + 5, offset + 5 + length);
    offset += 5 + length;
    if ((flags & 0x80) === 0x80) {
      return Object.fromEntries(
        data
          .toString('utf8')
          .split('\r\n')
          .filter((line) => line.includes(':'))
          .map((line) => {
            const colon = line.indexOf(':');
            return [line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()];
          }),
      );
    }
  }
  return {};
}

it('answers undecodable gRPC-Web bodies with INVALID_ARGUMENT in the trailer frame', async () => {
  const path = '/video.v1.VideoService/GetConsultationStatus';
  const bodies = [
    // A frame whose message is a field with a truncated length.
    Buffer.from([0, 0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0xff]),
    Buffer.from([0, 0, 0, 0, 2, 0x0a, 0x7f]),
    ...fc.sample(fc.uint8Array({ minLength: 1, maxLength: 256 }), 30).map((bytes) => {
      const frame = Buffer.alloc(5 + bytes.length);
      frame.writeUInt32BE(bytes.length, 1);
      frame.set(bytes, 5);
      return frame;
    }),
  ];
  const statuses = new Map<string, number>();
  for (const body of bodies) {
    const response = await fetch(`${t.baseUrl}${path}`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${t.token('doctor', 'doc-web')}`,
        'content-type': 'application/grpc-web+proto',
        'x-grpc-web': '1',
      },
      body,
    });
    const trailer = trailerOf(Buffer.from(await response.arrayBuffer()));
    const status = response.headers.get('grpc-status') ?? trailer['grpc-status'] ?? 'none';
    statuses.set(status, (statuses.get(status) ?? 0) + 1);
    const message = decodeURIComponent(trailer['grpc-message'] ?? '');
    expect(status, message).not.toBe('13');
    expect(status, message).not.toBe('none');
  }
  // The two hand-made frames cannot decode; random bytes sometimes do (then NOT_FOUND etc.).
  expect(statuses.get('3')).toBeGreaterThanOrEqual(2);
  const client = videoClient(t.baseUrl, t.token('doctor', 'doc-web'), 'grpc-web');
  await expect(client.getProviderStatus({})).resolves.toBeDefined();
});
