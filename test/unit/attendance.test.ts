import { describe, expect, it } from 'vitest';
import { attendanceTotals, type DisconnectReason } from '../../src/domain/attendance.js';

const t = (minute: number) => new Date(Date.UTC(2026, 0, 1, 10, minute));
const span = (from: number | null, to: number | null, reason: DisconnectReason = 'left') => ({
  joinedAt: from === null ? null : t(from),
  leftAt: to === null ? null : t(to),
  reason: to === null ? null : reason,
});

describe('attendance totals', () => {
  it('adds up separate connections', () => {
    const totals = attendanceTotals([span(0, 10), span(20, 25, 'network')]);
    expect(totals).toEqual({
      firstJoinedAt: t(0),
      lastLeftAt: t(25),
      connectedSeconds: 15 * 60,
      connected: false,
      lastReason: 'network',
    });
  });

  it('counts overlapping connections (two tabs) once', () => {
    expect(attendanceTotals([span(0, 10), span(5, 15), span(14, 16)]).connectedSeconds).toBe(
      16 * 60,
    );
  });

  it('knows who is still connected, and ignores what is not known yet', () => {
    const totals = attendanceTotals([span(0, 10), span(12, null), span(null, null)]);
    expect(totals.connected).toBe(true);
    expect(totals.connectedSeconds).toBe(10 * 60);
  });

  it('gives the same answer whatever order the records came in', () => {
    const spans = [span(30, 40, 'removed'), span(0, 10), span(5, 35)];
    expect(attendanceTotals(spans)).toEqual(attendanceTotals([...spans].reverse()));
    expect(attendanceTotals(spans).lastReason).toBe('removed');
  });

  it('is empty for nobody', () => {
    expect(attendanceTotals([])).toEqual({
      firstJoinedAt: null,
      lastLeftAt: null,
      connectedSeconds: 0,
      connected: false,
      lastReason: null,
    });
  });
});
