import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { invalidArgument } from '../domain/errors.js';

/**
 * Keyset pagination: the cursor names the last row of the page by its sort key (a time
 * and the id), so rows inserted meanwhile never shift or repeat a page.
 *
 * A page token is `payload.mac`: the payload (base64url JSON) holds a version, the cursor
 * and a fingerprint of the list and its filters (so a token is refused with other ones);
 * the MAC is HMAC-SHA256 of the payload under the server's page-token key
 * (`PAGE_TOKEN_SECRET`). A token is checked before it is read: a forged or altered one is
 * refused, and even a genuine one must hold a time in range and a UUID. Every refusal
 * answers INVALID_ARGUMENT `page_token: …`. Copies of the service must share the key, or a
 * page token issued by one is refused by another.
 */
export interface PageCursor {
  /** The sort time of the page's last row (scheduled start, or an audit entry's time). */
  readonly time: Date;
  readonly id: string;
}

/** Which list a token pages, and the filters (and caller) it was issued for. */
export interface PageScope {
  readonly list: 'history' | 'audit';
  readonly filters: unknown;
}

export interface PageTokens {
  encode(cursor: PageCursor, scope: PageScope): string;
  /** The cursor of a token; undefined for the empty token (the first page). */
  decode(token: string, scope: PageScope): PageCursor | undefined;
}

export const DEFAULT_PAGE_SIZE = 20;
export const MAX_PAGE_SIZE = 100;

const VERSION = 1;
/** The times a cursor may hold: years 1 to 9999, as timestamps in the API. */
const EARLIEST = new Date('0001-01-01T00:00:00Z').getTime();
const LATEST = new Date('9999-12-31T23:59:59.999Z').getTime();
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const SHAPE = /^([A-Za-z0-9_-]{1,400})\.([A-Za-z0-9_-]{43})$/;

/** What a list request asks of paging. */
export interface PageRequest {
  readonly pageSize: number;
  readonly pageToken: string;
}

/** One query of a keyset page: rows after the cursor, newest first, one more than a page. */
export interface KeysetQuery<K extends string> {
  /** The rows after the token's cursor (undefined on the first page), for the WHERE clause. */
  readonly after: KeysetAfter<K> | undefined;
  readonly orderBy: { readonly [key in K | 'id']: 'desc' };
  readonly limit: number;
}

export type KeysetAfter<K extends string> = { readonly [key in K]: { readonly $lte: Date } } & {
  readonly $or: [
    { readonly [key in K]: { readonly $lt: Date } },
    { readonly [key in K]: Date } & { readonly id: { readonly $lt: string } },
  ];
};

/**
 * One newest-first page of a list sorted by a time and the id: reads the request's token
 * (checked against the list's scope), lets `fetch` run the query, and answers the page
 * with the token of the next one ('' after the last page).
 */
export async function keysetPage<T extends { readonly id: string }, K extends string>(
  pageTokens: PageTokens,
  request: PageRequest,
  scope: PageScope,
  timeKey: K,
  timeOf: (row: T) => Date,
  fetch: (query: KeysetQuery<K>) => Promise<T[]>,
): Promise<{ items: T[]; nextPageToken: string }> {
  const limit = pageSize(request.pageSize);
  const cursor = pageTokens.decode(request.pageToken, scope);
  // `time <= cursor` says the same as the `$or` on its own, but unlike it bounds the index
  // scan: the page is read from the cursor on, not from the newest row down to it.
  const after = cursor && {
    [timeKey]: { $lte: cursor.time },
    $or: [{ [timeKey]: { $lt: cursor.time } }, { [timeKey]: cursor.time, id: { $lt: cursor.id } }],
  };
  const orderBy = { [timeKey]: 'desc', id: 'desc' };
  const rows = await fetch({ after, orderBy, limit: limit + 1 } as KeysetQuery<K>);
  const items = rows.slice(0, limit);
  const last = items.at(-1);
  return {
    items,
    nextPageToken:
      rows.length > limit && last
        ? pageTokens.encode({ time: timeOf(last), id: last.id }, scope)
        : '',
  };
}

export function pageSize(requested: number): number {
  if (requested === 0) return DEFAULT_PAGE_SIZE;
  if (requested > MAX_PAGE_SIZE) {
    throw invalidArgument('page_size', `must be at most ${MAX_PAGE_SIZE}`);
  }
  return requested;
}

/** Page tokens signed and checked with `secret` (PAGE_TOKEN_SECRET, or the derived one). */
export function createPageTokens(secret: string): PageTokens {
  const key = Buffer.from(secret, 'utf8');
  const mac = (payload: string) =>
    createHmac('sha256', key).update(`page-token.${payload}`).digest();
  const refused = () => invalidArgument('page_token', 'is not a token this service issued');

  return {
    encode(cursor, scope) {
      const payload = Buffer.from(
        JSON.stringify([VERSION, cursor.time.getTime(), cursor.id, fingerprint(scope)]),
      ).toString('base64url');
      return `${payload}.${mac(payload).toString('base64url')}`;
    },

    decode(token, scope) {
      if (token === '') return undefined;
      const shape = SHAPE.exec(token);
      if (!shape) throw refused();
      const [, payload = '', signature = ''] = shape;
      const given = Buffer.from(signature, 'base64url');
      const expected = mac(payload);
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw refused();
      let parsed: unknown;
      try {
        parsed = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
      } catch {
        throw refused();
      }
      // Signed by this service, so well-formed; checked anyway, since a leaked key must not
      // turn into database errors.
      if (
        !Array.isArray(parsed) ||
        parsed.length !== 4 ||
        parsed[0] !== VERSION ||
        !Number.isSafeInteger(parsed[1]) ||
        (parsed[1] as number) < EARLIEST ||
        (parsed[1] as number) > LATEST ||
        typeof parsed[2] !== 'string' ||
        !UUID.test(parsed[2]) ||
        typeof parsed[3] !== 'string'
      ) {
        throw refused();
      }
      if (parsed[3] !== fingerprint(scope)) {
        throw invalidArgument('page_token', 'was issued for other filters');
      }
      return { time: new Date(parsed[1] as number), id: parsed[2] };
    },
  };
}

/** A short hash of the list and its filters: a token only pages the list it came from. */
function fingerprint(scope: PageScope): string {
  return createHash('sha256')
    .update(JSON.stringify([scope.list, scope.filters]))
    .digest('base64url')
    .slice(0, 16);
}
