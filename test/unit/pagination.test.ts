import { createHash, createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DomainError } from '../../src/domain/errors.js';
import { createPageTokens, type PageScope, pageSize } from '../../src/video/pagination.js';

const SECRET = 'unit-test-page-token-secret-of-32-chars+';
const tokens = createPageTokens(SECRET);
const scope: PageScope = { list: 'history', filters: ['clinic-1', 'doc-1', []] };
const cursor = {
  time: new Date('2026-03-01T10:00:00Z'),
  id: '3f0c1c9e-8d5b-4b8e-9a51-0c7f6f0b2a11',
};

/** A token with any payload, signed as the service signs (what a leaked key allows). */
function signed(payload: unknown, secret = SECRET): string {
  const body = Buffer.from(JSON.stringify(payload)).toString('base64url');
  const mac = createHmac('sha256', secret).update(`page-token.${body}`).digest('base64url');
  return `${body}.${mac}`;
}
const fingerprint = (s: PageScope) =>
  createHash('sha256')
    .update(JSON.stringify([s.list, s.filters]))
    .digest('base64url')
    .slice(0, 16);

/** The message a decode refuses with; 'accepted' when it decodes. */
function refusal(token: string, s: PageScope = scope) {
  try {
    tokens.decode(token, s);
    return 'accepted';
  } catch (error) {
    expect(error).toBeInstanceOf(DomainError);
    expect((error as DomainError).code).toBe('invalid_argument');
    return (error as DomainError).message;
  }
}

describe('page tokens', () => {
  it('round-trip, and the empty token is the first page', () => {
    expect(tokens.decode(tokens.encode(cursor, scope), scope)).toEqual(cursor);
    expect(tokens.decode('', scope)).toBeUndefined();
    expect(signed([1, cursor.time.getTime(), cursor.id, fingerprint(scope)])).toBe(
      tokens.encode(cursor, scope),
    );
  });

  it('refuses a token issued for other filters, another list or another key', () => {
    const token = tokens.encode(cursor, scope);
    expect(refusal(token, { ...scope, filters: ['clinic-2', 'doc-1', []] })).toBe(
      'page_token: was issued for other filters',
    );
    expect(refusal(token, { list: 'audit', filters: scope.filters })).toBe(
      'page_token: was issued for other filters',
    );
    expect(() => createPageTokens(`${SECRET}x`).decode(token, scope)).toThrow(
      'page_token: is not a token this service issued',
    );
  });

  it('refuses forged and altered tokens: the old unsigned form, a changed payload or MAC', () => {
    const unsigned = (p: unknown) => Buffer.from(JSON.stringify(p)).toString('base64url');
    const token = tokens.encode(cursor, scope);
    const [body = '', mac = ''] = token.split('.');
    const other = Buffer.from(
      JSON.stringify([1, cursor.time.getTime() + 1, cursor.id, fingerprint(scope)]),
    ).toString('base64url');
    const flipped = `${mac.slice(0, -2)}${mac.at(-2) === 'A' ? 'B' : 'A'}${mac.at(-1)}`;
    for (const forged of [
      unsigned([cursor.time.getTime(), cursor.id, fingerprint(scope)]),
      `${other}.${mac}`,
      `${body}.${flipped}`,
      `${body}.`,
      `${body}.${mac}.x`,
      body,
      '%%%',
      '.',
      'a'.repeat(500),
    ]) {
      expect(refusal(forged), forged).toBe('page_token: is not a token this service issued');
    }
  });

  it('refuses a correctly signed token whose content is out of range', () => {
    const fp = fingerprint(scope);
    for (const payload of [
      [1, 1e300, cursor.id, fp],
      [1, -8.64e15, cursor.id, fp],
      [1, 8.64e15, cursor.id, fp],
      [1, 1.5, cursor.id, fp],
      [1, '0', cursor.id, fp],
      [1, null, cursor.id, fp],
      [1, 0, 'not-a-uuid', fp],
      [1, 0, `${cursor.id}\u0000`, fp],
      [1, 0, cursor.id],
      [2, 0, cursor.id, fp],
      { time: 0 },
    ]) {
      expect(refusal(signed(payload)), JSON.stringify(payload)).toBe(
        'page_token: is not a token this service issued',
      );
    }
    expect(refusal(signed([1, Date.UTC(2026, 0, 1), cursor.id, fp]))).toBe('accepted');
  });

  it('bounds the page size', () => {
    expect(pageSize(0)).toBe(20);
    expect(pageSize(7)).toBe(7);
    expect(() => pageSize(101)).toThrow(/page_size/);
  });
});
