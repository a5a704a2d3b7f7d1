/**
 * Who was connected, and for how long, from the provider's connection records. Providers'
 * webhooks are lossy and arrive out of order, so totals are always recomputed from every
 * connection known so far, never incremented.
 */
export type DisconnectReason =
  | 'left'
  | 'network'
  | 'removed'
  | 'session_closed'
  | 'provider_failure'
  | 'unknown';

export interface ConnectionSpan {
  readonly joinedAt: Date | null;
  readonly leftAt: Date | null;
  readonly reason: DisconnectReason | null;
}

export interface AttendanceTotals {
  readonly firstJoinedAt: Date | null;
  readonly lastLeftAt: Date | null;
  /** Seconds covered by at least one ended connection: two tabs at once count once. */
  readonly connectedSeconds: number;
  /** Whether some connection has joined and not left. */
  readonly connected: boolean;
  /** The reason of the connection that ended last. */
  readonly lastReason: DisconnectReason | null;
}

export function attendanceTotals(connections: readonly ConnectionSpan[]): AttendanceTotals {
  let firstJoinedAt: Date | null = null;
  let lastLeftAt: Date | null = null;
  let lastReason: DisconnectReason | null = null;
  let connected = false;
  const closed: [number, number][] = [];
  for (const c of connections) {
    if (c.joinedAt && (!firstJoinedAt || c.joinedAt < firstJoinedAt)) firstJoinedAt = c.joinedAt;
    if (c.leftAt && (!lastLeftAt || c.leftAt >= lastLeftAt)) {
      lastLeftAt = c.leftAt;
      lastReason = c.reason;
    }
    if (c.joinedAt && !c.leftAt) connected = true;
    if (c.joinedAt && c.leftAt && c.leftAt > c.joinedAt) {
      closed.push([c.joinedAt.getTime(), c.leftAt.getTime()]);
    }
  }
  return {
    firstJoinedAt,
    lastLeftAt,
    connectedSeconds: Math.floor(unionMs(closed) / 1000),
    connected,
    lastReason,
  };
}

/** The length of the union of intervals, in milliseconds. */
function unionMs(intervals: [number, number][]): number {
  const sorted = [...intervals].sort((a, b) => a[0] - b[0]);
  let total = 0;
  let start = Number.NEGATIVE_INFINITY;
  let end = Number.NEGATIVE_INFINITY;
  for (const [s, e] of sorted) {
    if (s > end) {
      if (end > start) total += end - start;
      start = s;
      end = e;
    } else if (e > end) {
      end = e;
    }
  }
  if (end > start) total += end - start;
  return total;
}
