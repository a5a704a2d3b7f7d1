import { describe, expect, it } from 'vitest';
import { DomainError } from '../../src/domain/errors.js';
import { decodeCursor, encodeCursor, pageSize } from '../../src/video/pagination.js';

describe('history cursor', () => {
  const cursor = { time: new Date('2026-03-01T10:00:00Z'), id: 'abc' };

  it('round-trips', () => {
    expect(decodeCursor(encodeCursor(cursor, 'f1'), 'f1')).toEqual(cursor);
    expect(decodeCursor('', 'f1')).toBeUndefined();
  });

  it('refuses garbage and a cursor issued for other filters', () => {
    expect(() => decodeCursor('%%%', 'f1')).toThrow(DomainError);
    expect(() => decodeCursor(Buffer.from('[1,2]').toString('base64url'), 'f1')).toThrow(
      /page_token/,
    );
    expect(() => decodeCursor(encodeCursor(cursor, 'f1'), 'f2')).toThrow(/other filters/);
  });

  it('bounds the page size', () => {
    expect(pageSize(0)).toBe(20);
    expect(pageSize(7)).toBe(7);
    expect(() => pageSize(101)).toThrow(/page_size/);
  });
});
