import { randomUUID } from 'node:crypto';
import { Code, ConnectError, type Interceptor } from '@connectrpc/connect';
import { codeToString } from '@connectrpc/connect/protocol-connect';
import type { Logger } from 'pino';
import type { TokenVerifier } from '../auth/jwt.js';
import { DomainError, type DomainErrorCode } from '../domain/errors.js';
import { databaseUnavailable } from '../persistence/database-errors.js';
import { kClientAddress, kPrincipal, kRequestId } from './context.js';
import { mappedStream } from './mapped-stream.js';
import type { WindowCounter } from './rate-limit.js';
import { type RuleOptions, validate } from './validation.js';

/** Services anyone may call without a token: load balancers and tooling use them. */
const PUBLIC_SERVICES = new Set([
  'grpc.health.v1.Health',
  'grpc.reflection.v1.ServerReflection',
  'grpc.reflection.v1alpha.ServerReflection',
]);

const CODES: Record<DomainErrorCode, Code> = {
  invalid_argument: Code.InvalidArgument,
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  failed_precondition: Code.FailedPrecondition,
  permission_denied: Code.PermissionDenied,
  unauthenticated: Code.Unauthenticated,
  resource_exhausted: Code.ResourceExhausted,
  unavailable: Code.Unavailable,
};

/**
 * A result code as the wire spells it (`failed_precondition`, `ok`): logs and metrics use
 * this one spelling.
 */
export function codeName(error: unknown): string {
  return error instanceof ConnectError ? codeToString(error.code) : 'unknown';
}

/** A client's `x-request-id` is kept (its first 64 characters) when it is printable ASCII. */
const REQUEST_ID = /^[\x21-\x7e]+$/;

/** Logs one line per call: method, code, duration, request id. Never the payload. */
export function createLoggingInterceptor(logger: Logger): Interceptor {
  return (next) => async (req) => {
    const given = req.header.get('x-request-id') ?? '';
    const requestId = REQUEST_ID.test(given) ? given.slice(0, 64) : randomUUID();
    req.contextValues.set(kRequestId, requestId);
    const started = performance.now();
    const procedure = `${req.service.typeName}/${req.method.name}`;
    try {
      const res = await next(req);
      logger.info({ requestId, procedure, code: 'ok', ms: elapsed(started) }, 'rpc');
      return res;
    } catch (error) {
      logger.info({ requestId, procedure, code: codeName(error), ms: elapsed(started) }, 'rpc');
      throw error;
    }
  };
}

/**
 * Maps errors to Connect codes: a DomainError to its code, a database out of reach (a
 * lost or refused connection, no connection within the acquire timeout, a statement
 * timeout) to UNAVAILABLE, which callers retry; anything else to INTERNAL with a generic
 * message. The cause goes to the log, never to the client.
 */
export function createErrorInterceptor(logger: Logger): Interceptor {
  function mapped(error: unknown, requestId: string): ConnectError {
    if (error instanceof DomainError) return new ConnectError(error.message, CODES[error.code]);
    const unavailable = databaseUnavailable(error);
    if (unavailable) {
      logger.warn({ err: error, requestId }, 'rpc: database unavailable');
      return new ConnectError(unavailable.message, CODES[unavailable.code]);
    }
    if (error instanceof ConnectError) {
      if (error.code !== Code.Internal && error.code !== Code.Unknown) return error;
      logger.error({ err: error, requestId }, 'rpc failed');
      return new ConnectError('internal error', error.code);
    }
    logger.error({ err: error, requestId }, 'rpc failed');
    return new ConnectError('internal error', Code.Internal);
  }
  return (next) => async (req) => {
    const requestId = req.contextValues.get(kRequestId);
    try {
      const res = await next(req);
      if (!res.stream) return res;
      // A stream's failure comes while it answers: the same mapping, message by message.
      const message = mappedStream(
        res.message,
        (message) => message,
        (error) => mapped(error, requestId),
      );
      return { ...res, message };
    } catch (error) {
      throw mapped(error, requestId);
    }
  };
}

/**
 * A caller's deadline (`grpc-timeout`, `connect-timeout-ms`) bounds its call: once it has
 * passed (or the caller has gone), the call answers DEADLINE_EXCEEDED (or CANCELED) at
 * once, whatever the handler still waits for. The abandoned work is itself bounded by the
 * database's acquire, statement and idle-in-transaction timeouts; it is not cut midway,
 * so a use case's provider call and the database write that records it stay together.
 */
export function createDeadlineInterceptor(): Interceptor {
  return (next) => async (req) => {
    // A stream answers as it goes; its handler watches the signal itself.
    if (req.stream) return next(req);
    const { signal } = req;
    if (signal.aborted) throw ConnectError.from(signal.reason, Code.Canceled);
    let stop = () => {};
    const abandoned = new Promise<never>((_, reject) => {
      const onAbort = () => reject(ConnectError.from(signal.reason, Code.Canceled));
      signal.addEventListener('abort', onAbort, { once: true });
      stop = () => signal.removeEventListener('abort', onAbort);
    });
    try {
      return await Promise.race([next(req), abandoned]);
    } finally {
      stop();
    }
  };
}

/**
 * Verifies the bearer token of every call but the public services. A client address whose
 * tokens failed the limit of `failures` within its window is refused with
 * RESOURCE_EXHAUSTED (and `retry-after`) before its next token is even looked at, so
 * guessing or forging tokens is slow. Without `failures`, failures are not counted.
 *
 * With a shared store an address is refused at once by the copy that counted the
 * failure that reached the limit; another copy refuses it after its next failure there
 * (the store answers the shared count), so success costs no round trip to the store.
 */
export function createAuthInterceptor(
  verifier: TokenVerifier,
  failures?: WindowCounter,
): Interceptor {
  return (next) => async (req) => {
    if (PUBLIC_SERVICES.has(req.service.typeName)) return next(req);
    const address = req.contextValues.get(kClientAddress) ?? 'unknown';
    const blocked = failures?.blockedFor(address) ?? 0;
    if (blocked > 0) throw exhausted('too many failed authentications', blocked);
    try {
      const header = req.header.get('authorization') ?? '';
      const match = /^Bearer ([^\s]+)$/i.exec(header);
      if (!match?.[1]) {
        throw new DomainError('unauthenticated', 'missing Authorization: Bearer <token>');
      }
      req.contextValues.set(kPrincipal, await verifier.verify(match[1]));
    } catch (error) {
      const refused =
        error instanceof DomainError
          ? error.code === 'unauthenticated'
          : error instanceof ConnectError && error.code === Code.Unauthenticated;
      if (refused) await failures?.count(address);
      throw error;
    }
    return next(req);
  };
}

/** RESOURCE_EXHAUSTED with a `retry-after` of whole seconds. */
function exhausted(what: string, blockedMs: number): ConnectError {
  const retryAfter = Math.max(1, Math.ceil(blockedMs / 1000));
  return new ConnectError(`${what}: retry in ${retryAfter}s`, Code.ResourceExhausted, {
    'retry-after': String(retryAfter),
  });
}

/**
 * Checks each request message against the API's input rules before the handler sees it:
 * a unary call's message at once, a stream's messages as they are read.
 */
export function createValidationInterceptor(options: RuleOptions): Interceptor {
  const check = (message: Parameters<typeof validate>[0]) => {
    const violation = validate(message, options);
    if (violation) {
      throw new DomainError(
        'invalid_argument',
        `${violation.field}: ${violation.message}`,
        violation.field,
      );
    }
  };
  return (next) => async (req) => {
    if (!req.stream) {
      check(req.message);
      return next(req);
    }
    const messages = req.message;
    async function* checked() {
      for await (const message of messages) {
        check(message);
        yield message;
      }
    }
    return next({ ...req, message: checked() });
  };
}

/**
 * Per-caller rate limiting: each principal (user in a clinic) gets the calls `calls`
 * allows per window; beyond that, RESOURCE_EXHAUSTED with a `retry-after` hint. Counted
 * where `calls` counts: this copy's memory, or a store all copies share (rate-limit.ts).
 */
export function createRateLimitInterceptor(calls: WindowCounter | undefined): Interceptor {
  return (next) => async (req) => {
    const principal = req.contextValues.get(kPrincipal);
    if (!principal || !calls) return next(req);
    const key = `${principal.clinicId}/${principal.userId}`;
    const blocked = calls.blockedFor(key) || (await calls.count(key));
    if (blocked > 0) throw exhausted('rate limit exceeded', blocked);
    return next(req);
  };
}

function elapsed(started: number): number {
  return Math.round((performance.now() - started) * 10) / 10;
}
