import { randomUUID } from 'node:crypto';
import { Code, ConnectError, createContextKey, type Interceptor } from '@connectrpc/connect';
import type { Logger } from 'pino';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import type { TokenVerifier } from '../auth/jwt.js';
import type { Principal } from '../domain/access.js';
import { DomainError, type DomainErrorCode } from '../domain/errors.js';
import { type RuleOptions, validate } from './validation.js';

/** The authenticated caller of this request; set by the auth interceptor. */
export const kPrincipal = createContextKey<Principal | undefined>(undefined, {
  description: 'the authenticated caller',
});

/** The client's network address, set by the HTTP server for the audit trail. */
export const kClientAddress = createContextKey<string | undefined>(undefined, {
  description: 'client address',
});

/** The id that ties this request's log lines together. */
export const kRequestId = createContextKey<string>('', { description: 'request id' });

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

/** Logs one line per call: method, code, duration, request id. Never the payload. */
export function createLoggingInterceptor(logger: Logger): Interceptor {
  return (next) => async (req) => {
    const requestId = req.header.get('x-request-id')?.slice(0, 64) || randomUUID();
    req.contextValues.set(kRequestId, requestId);
    const started = performance.now();
    const procedure = `${req.service.typeName}/${req.method.name}`;
    try {
      const res = await next(req);
      logger.info({ requestId, procedure, code: 'ok', ms: elapsed(started) }, 'rpc');
      return res;
    } catch (error) {
      const code = error instanceof ConnectError ? Code[error.code] : 'unknown';
      logger.info({ requestId, procedure, code, ms: elapsed(started) }, 'rpc');
      throw error;
    }
  };
}

/**
 * Maps errors to Connect codes: a DomainError to its code, anything else to INTERNAL
 * with a generic message; the cause goes to the log, never to the client.
 */
export function createErrorInterceptor(logger: Logger): Interceptor {
  return (next) => async (req) => {
    try {
      return await next(req);
    } catch (error) {
      if (error instanceof DomainError) {
        throw new ConnectError(error.message, CODES[error.code]);
      }
      if (error instanceof ConnectError) {
        if (error.code === Code.Internal || error.code === Code.Unknown) {
          logger.error({ err: error, requestId: req.contextValues.get(kRequestId) }, 'rpc failed');
          throw new ConnectError('internal error', error.code);
        }
        throw error;
      }
      logger.error({ err: error, requestId: req.contextValues.get(kRequestId) }, 'rpc failed');
      throw new ConnectError('internal error', Code.Internal);
    }
  };
}

/** Verifies the bearer token of every call but the public services. */
export function createAuthInterceptor(verifier: TokenVerifier): Interceptor {
  return (next) => async (req) => {
    if (PUBLIC_SERVICES.has(req.service.typeName)) return next(req);
    const header = req.header.get('authorization') ?? '';
    const match = /^Bearer ([^\s]+)$/i.exec(header);
    if (!match?.[1]) {
      throw new DomainError('unauthenticated', 'missing Authorization: Bearer <token>');
    }
    req.contextValues.set(kPrincipal, await verifier.verify(match[1]));
    return next(req);
  };
}

/** Checks the request message against the API's input rules before the handler runs. */
export function createValidationInterceptor(options: RuleOptions): Interceptor {
  return (next) => async (req) => {
    if (!req.stream) {
      const violation = validate(req.message, options);
      if (violation) {
        throw new DomainError(
          'invalid_argument',
          `${violation.field}: ${violation.message}`,
          violation.field,
        );
      }
    }
    return next(req);
  };
}

/**
 * Per-caller rate limiting: each principal (user in a clinic) gets `requests` calls per
 * `windowSeconds`; beyond that, RESOURCE_EXHAUSTED with a `retry-after` hint. Counted per
 * instance: behind a load balancer with N copies a caller may get up to N times the
 * limit (documented in the README).
 */
export function createRateLimitInterceptor(options: {
  requests: number;
  windowSeconds: number;
}): Interceptor {
  const limiter = new RateLimiterMemory({
    points: options.requests,
    duration: options.windowSeconds,
  });
  return (next) => async (req) => {
    const principal = req.contextValues.get(kPrincipal);
    if (!principal || options.requests === 0) return next(req);
    try {
      await limiter.consume(`${principal.clinicId}/${principal.userId}`);
    } catch (rejection) {
      if (!(rejection instanceof RateLimiterRes)) throw rejection;
      const retryAfter = Math.max(1, Math.ceil(rejection.msBeforeNext / 1000));
      throw new ConnectError(
        `rate limit exceeded: retry in ${retryAfter}s`,
        Code.ResourceExhausted,
        { 'retry-after': String(retryAfter) },
      );
    }
    return next(req);
  };
}

function elapsed(started: number): number {
  return Math.round((performance.now() - started) * 10) / 10;
}
