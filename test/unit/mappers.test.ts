import { describe, expect, it } from 'vitest';
import { fromTimestamp } from '../../src/rpc/mappers.js';

describe('fromTimestamp', () => {
  it('keeps the last instant of year 9999 in year 9999 (no rounding into year 10000)', () => {
    const date = fromTimestamp({ seconds: 253402300799n, nanos: 999_999_978 } as never);
    expect(date?.toISOString()).toBe('9999-12-31T23:59:59.999Z');
  });

  it('truncates to the millisecond, before and after 1970', () => {
    expect(fromTimestamp({ seconds: 1n, nanos: 1_999_999 } as never)?.getTime()).toBe(1001);
    expect(fromTimestamp({ seconds: -1n, nanos: 500_000_000 } as never)?.getTime()).toBe(-500);
    expect(fromTimestamp(undefined)).toBeUndefined();
  });
});
