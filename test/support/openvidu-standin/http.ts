/**
 * The stand-in's HTTP plumbing: routes under /openvidu/api, Basic auth, error answers
 * built the way openvidu-server builds them, and reading JSON bodies.
 */
import { createServer, type IncomingMessage, type ServerResponse, STATUS_CODES } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { StandInRequest } from '../openvidu-standin.js';

/** REST: "Share the same base path: /openvidu/api/". */
export const API = '/openvidu/api';

export type Body = Record<string, unknown>;

export interface Reply {
  readonly status: number;
  readonly body?: unknown;
}

export interface ApiRequest {
  readonly params: readonly string[];
  readonly query: URLSearchParams;
  readonly body: Body | undefined;
}

export interface Route {
  readonly method: string;
  readonly pattern: RegExp;
  /** Whether the operation reads a JSON body, and whether it must be there. */
  readonly body?: 'optional' | 'required';
  readonly handle: (request: ApiRequest) => Reply;
}

/**
 * A failed operation. openvidu-server answers most failures with a bare status and an
 * empty body (`new ResponseEntity<>(HttpStatus.NOT_FOUND)` for 404, 406, 409, 501); a
 * problem with the request body (400, 422) carries its error JSON, and that is when
 * `detail` is given.
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly detail?: string,
  ) {
    super(detail ?? STATUS_CODES[status] ?? String(status));
  }
}

/**
 * The HTTP server: it logs every request, applies the tests' failWith and delay, checks
 * the secret and hands each operation to its route.
 */
export class ApiServer {
  readonly requests: StandInRequest[] = [];
  failure: number | 'reset' | undefined;
  delayMs = 0;
  private baseUrl = '';
  private readonly server = createServer((req, res) => {
    this.onRequest(req, res).catch((error: unknown) => {
      const message = error instanceof Error ? error.message : String(error);
      if (!res.headersSent) send(res, errorReply(500, message, req.url ?? ''));
    });
  });

  constructor(
    private readonly secret: string,
    private readonly routes: readonly Route[],
  ) {}

  get url(): string {
    return this.baseUrl;
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => resolve());
    });
    const { port } = this.server.address() as AddressInfo;
    this.baseUrl = `http://127.0.0.1:${port}`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const target = new URL(req.url ?? '/', 'http://stand-in');
    const entry = { method: req.method ?? '', path: req.url ?? '', status: 0 };
    this.requests.push(entry);
    const raw = await readBody(req);
    await sleepAtLeast(this.delayMs);
    if (this.failure === 'reset') {
      req.socket.destroy();
      return;
    }
    // failWith stands for a broken server or a proxy in front of it: a bare status.
    const reply =
      this.failure === undefined ? this.answer(req, target, raw) : { status: this.failure };
    entry.status = reply.status;
    send(res, reply);
  }

  private answer(req: IncomingMessage, target: URL, raw: string): Reply {
    // REST: "All REST API operations return HTTP status 401 if the Authorization header
    // is wrong or not provided."
    if (!authorized(req.headers.authorization, this.secret)) {
      return errorReply(401, 'Unauthorized', target.pathname);
    }
    const path = target.pathname.startsWith(`${API}/`) ? target.pathname.slice(API.length) : '';
    const matching = this.routes.filter((candidate) => candidate.pattern.test(path));
    const found = matching.find((candidate) => candidate.method === req.method);
    if (!found) {
      const status = matching.length > 0 ? 405 : 404;
      return errorReply(status, `No operation ${req.method} ${target.pathname}`, target.pathname);
    }
    try {
      const params = (found.pattern.exec(path) ?? []).slice(1).map(decodeSegment);
      const body = found.body ? parseBody(raw, found.body) : undefined;
      return found.handle({ params, query: target.searchParams, body });
    } catch (error) {
      if (error instanceof ApiError) return replyFor(error, target.pathname);
      throw error;
    }
  }
}

/** A route from a path template under /openvidu/api, `:name` standing for one segment. */
export function route(
  method: string,
  template: string,
  handle: Route['handle'],
  body?: Route['body'],
): Route {
  const pattern = new RegExp(`^${template.replace(/:\w+/g, '([^/]+)')}$`);
  return { method, pattern, handle, ...(body ? { body } : {}) };
}

/** openvidu-server's generateErrorResponse: {timestamp, status, error, message, path}. */
export function errorReply(status: number, message: string, path: string): Reply {
  return {
    status,
    body: { timestamp: Date.now(), status, error: STATUS_CODES[status] ?? 'Error', message, path },
  };
}

function replyFor(error: ApiError, path: string): Reply {
  return error.detail === undefined
    ? { status: error.status }
    : errorReply(error.status, error.detail, path);
}

/** REST: Basic Auth with user OPENVIDUAPP and the secret as password. */
function authorized(header: string | undefined, secret: string): boolean {
  const [scheme, encoded] = (header ?? '').split(' ');
  if (scheme?.toLowerCase() !== 'basic' || !encoded) return false;
  return Buffer.from(encoded, 'base64').toString('utf8') === `OPENVIDUAPP:${secret}`;
}

function send(res: ServerResponse, reply: Reply): void {
  if (reply.body === undefined) {
    res.writeHead(reply.status, { 'content-length': 0 }).end();
    return;
  }
  const json = JSON.stringify(reply.body);
  res
    .writeHead(reply.status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(json),
    })
    .end(json);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new ApiError(400, `Malformed path segment ${segment}`);
  }
}

/** For what the service never asks: a test that needs it should fail loudly, not pass. */
export function notModelled(what: string): never {
  throw new Error(`the OpenVidu stand-in does not model ${what}`);
}

// Reading request bodies (REST: "400 Problem with some body parameter")

type Check<T> = (value: unknown) => value is T;

export const isString: Check<string> = (value): value is string => typeof value === 'string';
export const isBoolean: Check<boolean> = (value): value is boolean => typeof value === 'boolean';
export const isInteger: Check<number> = (value): value is number => Number.isInteger(value);
export const isObject: Check<Body> = (value): value is Body =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

export function oneOf<T extends string>(values: readonly T[]): Check<T> {
  return (value): value is T =>
    typeof value === 'string' && (values as readonly string[]).includes(value);
}

/** One body field. As OpenVidu reads its JSON map, absent and null both mean "not given". */
export function read<T>(body: Body, key: string, check: Check<T>): T | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (!check(value)) throw new ApiError(400, `Type error in parameter '${key}'`);
  return value;
}

/** REST: operations take a JSON object; one that does not parse is a 400. */
function parseBody(raw: string, need: 'optional' | 'required'): Body | undefined {
  if (raw.trim() === '') {
    if (need === 'required') throw new ApiError(400, 'Error in body parameters. Cannot be empty');
    return undefined;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new ApiError(400, 'JSON parse error');
  }
  if (!isObject(parsed)) throw new ApiError(400, 'The body must be a JSON object');
  return parsed;
}

/** Waits at least `ms` (timers may fire a little early; this never answers sooner). */
async function sleepAtLeast(ms: number): Promise<void> {
  const until = performance.now() + ms;
  for (let left = ms; left > 0; left = until - performance.now()) {
    await new Promise((resolve) => setTimeout(resolve, Math.ceil(left)));
  }
}
