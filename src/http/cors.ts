import { cors as connectCors } from '@connectrpc/connect';
import type { CorsPolicy } from '../config.js';

/** Request headers a browser may send: Connect's, gRPC-Web's, and the bearer token. */
const ALLOWED_HEADERS = [...connectCors.allowedHeaders, 'Authorization', 'X-Request-Id'].join(', ');
/** Response headers a browser script may read: Connect's and gRPC-Web's, and ours. */
const EXPOSED_HEADERS = [...connectCors.exposedHeaders, 'Retry-After', 'X-Request-Id'].join(', ');
const ALLOWED_METHODS = connectCors.allowedMethods.join(', ');
/** How long a browser may reuse a preflight answer (Chromium caps it at 2 hours). */
const MAX_AGE_SECONDS = 7200;

const LOCAL_DEVELOPMENT = /^http:\/\/(localhost|127\.0\.0\.1)(:\d{1,5})?$/;

/** Just what CORS needs of a request and a response, HTTP/1.1 or HTTP/2. */
interface CorsRequest {
  readonly method?: string | undefined;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}
interface CorsResponse {
  setHeader(name: string, value: string): unknown;
  writeHead(status: number): unknown;
  end(): unknown;
}

export interface Cors {
  /**
   * Adds the CORS headers an allowed origin gets. Answers true when the request was a
   * preflight, which it has then answered; the caller serves the request otherwise.
   */
  handle(req: CorsRequest, res: CorsResponse): boolean;
  /** What the start-up log says about who may call from a browser. */
  readonly description: string;
}

/**
 * CORS for every route on the port, the Connect way: the header lists connect-es exports
 * for its protocols, plus `Authorization`. An origin not allowed gets no CORS header at
 * all, so the browser blocks its page from reading the answer; the call itself is served
 * as any other (CORS protects browsers' users, not the server).
 */
export function createCors(policy: CorsPolicy): Cors {
  const allowed = new Set(policy.origins);
  const isAllowed = (origin: string) =>
    policy.anyOrigin ||
    allowed.has(origin) ||
    (policy.localDevelopment && LOCAL_DEVELOPMENT.test(origin));
  return {
    handle(req, res) {
      res.setHeader('vary', 'Origin');
      const origin = req.headers.origin;
      const preflight =
        req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined;
      if (typeof origin === 'string' && isAllowed(origin)) {
        res.setHeader('access-control-allow-origin', origin);
        if (preflight) {
          res.setHeader('access-control-allow-methods', ALLOWED_METHODS);
          res.setHeader('access-control-allow-headers', ALLOWED_HEADERS);
          res.setHeader('access-control-max-age', String(MAX_AGE_SECONDS));
        } else {
          res.setHeader('access-control-expose-headers', EXPOSED_HEADERS);
        }
      }
      if (!preflight) return false;
      res.writeHead(204);
      res.end();
      return true;
    },
    description: describe(policy),
  };
}

function describe(policy: CorsPolicy): string {
  if (policy.anyOrigin) return 'any origin (CORS_ALLOWED_ORIGINS=*)';
  if (policy.localDevelopment) {
    return 'http://localhost:* and http://127.0.0.1:* (development default; set CORS_ALLOWED_ORIGINS to choose)';
  }
  if (policy.origins.length === 0) return 'none (CORS_ALLOWED_ORIGINS is not set)';
  return policy.origins.join(', ');
}
