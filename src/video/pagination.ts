import { createHash } from 'node:crypto';
import { invalidArgument } from '../domain/errors.js';

/**
 * Keyset pagination: the cursor names the last row of the page by its sort key (a time
 * and the id), so rows inserted meanwhile never shift or repeat a page. It also carries
 * a fingerprint of the filters, so a cursor is refused with other ones.
 */
export interface PageCursor {
  /** The sort time of the page's last row (scheduled start, or an audit entry's time). */
  readonly time: Date;
  readonly id: string;
}

export const DEFAULT_PAGE_SIZE = 20;
export const MAX_PAGE_SIZE = 100;

export function pageSize(requested: number): number {
  if (requested === 0) return DEFAULT_PAGE_SIZE;
  if (requested > MAX_PAGE_SIZE) {
    throw invalidArgument('page_size', `must be at most ${MAX_PAGE_SIZE}`);
  }
  return requested;
}

export function filterFingerprint(filters: unknown): string {
  return createHash('sha256').update(JSON.stringify(filters)).digest('base64url').slice(0, 16);
}

export function encodeCursor(cursor: PageCursor, fingerprint: string): string {
  const payload = JSON.stringify([cursor.time.getTime(), cursor.id, fingerprint]);
  return Buffer.from(payload).toString('base64url');
}

export function decodeCursor(token: string, fingerprint: string): PageCursor | undefined {
  if (token === '') return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    throw invalidArgument('page_token', 'is not a token this service issued');
  }
  if (
    !Array.isArray(parsed) ||
    parsed.length !== 3 ||
    typeof parsed[0] !== 'number' ||
    !Number.isFinite(parsed[0]) ||
    typeof parsed[1] !== 'string' ||
    typeof parsed[2] !== 'string'
  ) {
    throw invalidArgument('page_token', 'is not a token this service issued');
  }
  if (parsed[2] !== fingerprint) {
    throw invalidArgument('page_token', 'was issued for other filters');
  }
  return { time: new Date(parsed[0]), id: parsed[1] };
}
