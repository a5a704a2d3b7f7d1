import { DomainError } from '../domain/errors.js';

/**
 * SQLSTATEs that say "the database cannot do it now, try again": the connection is gone
 * (class 08, 57P0x, 25P03 ended the session), the server is full, a timeout cancelled
 * the statement, or PostgreSQL chose this transaction as the loser of a conflict.
 */
const RETRYABLE_SQLSTATES = new Set([
  '57P01', // admin_shutdown: pg_terminate_backend, a fast shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now: starting up, in recovery
  '53300', // too_many_connections
  '25P03', // idle_in_transaction_session_timeout ended the session
  '57014', // query_canceled: statement_timeout
  '40001', // serialization_failure
  '40P01', // deadlock_detected
]);

/** Socket errors on the way to the database. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/**
 * What `pg` and `pg-pool` (8.x / 3.x) say, without a code, when a connection is lost,
 * cannot be had in time, or is closed under a query.
 */
const CONNECTION_MESSAGES = [
  'Connection terminated',
  'timeout exceeded when trying to connect',
  'timeout expired',
  'Client has encountered a connection error and is not queryable',
  'Client was closed and is not queryable',
  'Query read timeout',
  'Cannot use a pool after calling end on the pool',
];

/**
 * Whether an error means the database is out of reach or asked for a retry: a lost or
 * refused connection, no connection within the acquire timeout, a statement timeout, a
 * terminated session. Such a call is worth retrying, and must not read as a bug.
 * Looks through MikroORM's wrappers (which copy the driver error's code) and `cause`s.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  const seen = new Set<unknown>();
  const queue: unknown[] = [error];
  while (queue.length > 0) {
    const current = queue.shift();
    if (!(current instanceof Error) || seen.has(current)) continue;
    seen.add(current);
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') {
      if (code.startsWith('08') || RETRYABLE_SQLSTATES.has(code) || NETWORK_CODES.has(code)) {
        return true;
      }
    }
    if (CONNECTION_MESSAGES.some((message) => current.message.startsWith(message))) return true;
    queue.push(current.cause);
    // An AggregateError's (a connect refused on every address), also as MikroORM copies it.
    const { errors } = current as { errors?: unknown };
    if (Array.isArray(errors)) queue.push(...errors);
  }
  return false;
}

/**
 * The domain's answer to a database that is out of reach: UNAVAILABLE, which callers
 * retry. Undefined for any other error.
 */
export function databaseUnavailable(error: unknown): DomainError | undefined {
  if (!isDatabaseUnavailable(error)) return undefined;
  return new DomainError('unavailable', 'the database is unavailable; retry', undefined, {
    cause: error,
  });
}
