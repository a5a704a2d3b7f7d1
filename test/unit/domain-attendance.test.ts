import { describe, expect, it } from 'vitest';
import { attendanceTotals } from '../../src/domain/attendance.js';

const t = (minute: number) => new Date(Date.UTC(2026, 0, 1, 10, minute));
const span = (from: number, to: number) => ({
  joinedAt: t(from),
  leftAt: t(to),
  reason: 'left' as const,
});

describe('attendance time', () => {
  it('counts a connection opened and closed during another one once', () => {
    // A second tab that came and went while the first stayed connected.
    expect(attendanceTotals([span(0, 30), span(5, 10)]).connectedSeconds).toBe(30 * 60);
    expect(attendanceTotals([span(0, 30), span(5, 10), span(20, 40)]).connectedSeconds).toBe(
      40 * 60,
    );
  });

  it('counts back-to-back connections (a reconnect) without a gap or an overlap', () => {
    expect(attendanceTotals([span(0, 10), span(10, 20)]).connectedSeconds).toBe(20 * 60);
  });

  it('counts nothing for a connection that left before it joined (clock skew)', () => {
    expect(attendanceTotals([span(10, 5)]).connectedSeconds).toBe(0);
    expect(attendanceTotals([span(0, 10), span(30, 20)]).connectedSeconds).toBe(10 * 60);
  });
});
