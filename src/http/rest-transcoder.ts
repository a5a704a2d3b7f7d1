import type http from 'node:http';
import http2 from 'node:http2';
import {
  type DescField,
  type DescMessage,
  type DescMethod,
  type DescService,
  fromBinary,
  getOption,
  hasOption,
  type JsonObject,
  type JsonValue,
  toJson,
} from '@bufbuild/protobuf';
import type { ContextValues } from '@connectrpc/connect';
import type { UniversalHandler, UniversalServerResponse } from '@connectrpc/connect/protocol';
import { universalResponseToNodeResponse } from '@connectrpc/connect-node';
import type { Logger } from 'pino';
import { http as httpRule } from '../../gen/google/api/annotations_pb.js';
import {
  appendPath,
  fromText,
  isObject,
  RestError,
  resolveFieldPath,
  setPath,
} from './rest-json.js';
import { readMultipart, requestWithFile, type Upload, uploadField } from './rest-upload.js';

type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;
type NodeResponse = http.ServerResponse | http2.Http2ServerResponse;

type Segment = { readonly literal: string } | { readonly variable: readonly DescField[] };

/** One REST route, read from an RPC's `google.api.http` annotation. */
export interface RestRoute {
  readonly httpMethod: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** The annotation's path template, e.g. `/api/video/consultation/{consultation_id}/status`. */
  readonly template: string;
  readonly method: DescMethod;
  /** `*`: the body is the request message; a field name: the body is that field. */
  readonly body: string | undefined;
  /** A field of the response message that is the whole answer. */
  readonly responseBody: string | undefined;
  readonly segments: readonly Segment[];
}

/**
 * The REST routes of every annotated RPC of these services, in declaration order. A
 * template this transcoder cannot serve stops the start with a message naming it.
 */
export function restRoutes(services: readonly DescService[]): RestRoute[] {
  const routes: RestRoute[] = [];
  for (const service of services) {
    for (const method of service.methods) {
      if (!hasOption(method, httpRule)) continue;
      const rule = getOption(method, httpRule);
      if (rule.additionalBindings.length > 0) {
        throw new Error(`${method.toString()}: additional_bindings are not supported`);
      }
      const { case: verb, value } = rule.pattern;
      if (verb === undefined || verb === 'custom') {
        throw new Error(`${method.toString()}: an HTTP rule needs get, post, put, patch or delete`);
      }
      if (method.methodKind !== 'unary') {
        throw new Error(`${method.toString()}: only unary RPCs have REST routes`);
      }
      const body = rule.body === '' ? undefined : rule.body;
      if (body !== undefined && body !== '*') fieldPath(method.input, body, method);
      const responseBody = rule.responseBody === '' ? undefined : rule.responseBody;
      if (responseBody !== undefined) fieldPath(method.output, responseBody, method);
      routes.push({
        httpMethod: verb.toUpperCase() as RestRoute['httpMethod'],
        template: value,
        method,
        body,
        responseBody,
        segments: parseTemplate(value, method),
      });
    }
  }
  return routes;
}

/** `/a/{field}/b` → segments; `{field=*}` is the same as `{field}`; nothing else is taken. */
function parseTemplate(template: string, method: DescMethod): Segment[] {
  if (!template.startsWith('/')) {
    throw new Error(`${method.toString()}: path template "${template}" must start with /`);
  }
  return template
    .slice(1)
    .split('/')
    .map((part): Segment => {
      const variable = /^\{([a-z_][a-z0-9_.]*)(?:=\*)?\}$/i.exec(part)?.[1];
      if (variable !== undefined) return { variable: fieldPath(method.input, variable, method) };
      if (/[{}*]/.test(part) || part === '') {
        throw new Error(`${method.toString()}: path segment "${part}" is not supported`);
      }
      return { literal: part };
    });
}

/** The fields a dotted path (`a.b`, proto or JSON names) names in a message. */
function fieldPath(message: DescMessage, path: string, method: DescMethod): DescField[] {
  const fields = resolveFieldPath(message, path);
  if (!fields) throw new Error(`${method.toString()}: ${message.typeName} has no field "${path}"`);
  return fields;
}

export interface RestTranscoderOptions {
  readonly routes: readonly RestRoute[];
  /** The Connect router's handlers by request path: the REST call is served by the same one. */
  readonly handlers: ReadonlyMap<string, UniversalHandler>;
  /** Largest JSON body read, in bytes. */
  readonly readMaxBytes: number;
  /** Largest file of a multipart upload; one more byte is read, so the handler refuses it. */
  readonly uploadMaxBytes: number;
  readonly logger: Logger;
}

export interface RestTranscoder {
  /**
   * Serves the request when its path is one of the routes' (405 when only the method is
   * wrong); answers false, untouched, when no route has that path.
   */
  serve(req: NodeRequest, res: NodeResponse, contextValues: ContextValues): boolean;
}

/**
 * The REST face of the API, from the `google.api.http` annotations alone: the path's
 * variables, the query string (GET) or the JSON body (`body: "*"`) make the request
 * message's protobuf JSON, which goes to the very handler the Connect router serves as
 * a Connect unary JSON call. Authentication, rate limits, validation, audit, metrics,
 * logging and error mapping are therefore the same code path, and the answer is what
 * Connect answers: the response message's protobuf JSON, or the Connect error JSON with
 * the HTTP status of Connect's code table (and its headers, e.g. `Retry-After`).
 *
 * A route whose request has one `bytes` field also takes `multipart/form-data`, what a
 * browser's file form sends: the file part (named `image`, or the field's name) fills
 * that field, read while streaming and never more than `uploadMaxBytes` + 1 bytes.
 */
export function createRestTranscoder(options: RestTranscoderOptions): RestTranscoder {
  const routes = options.routes.map((route) => {
    const handler = options.handlers.get(procedurePath(route.method));
    if (!handler) throw new Error(`${route.method.toString()}: no handler is registered`);
    return { ...route, handler, upload: uploadField(route.method.input) };
  });

  return {
    serve(req, res, contextValues) {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const segments = pathSegments(url.pathname);
      if (!segments) return false;
      const onPath = routes.filter((route) => matches(route.segments, segments));
      if (onPath.length === 0) return false;
      const route = onPath.find((r) => r.httpMethod === req.method);
      if (!route) {
        const allow = [...new Set(onPath.map((r) => r.httpMethod))].join(', ');
        sendError(res, 405, 'unimplemented', `${req.method} is not allowed here; use ${allow}`, {
          allow,
        });
        return true;
      }
      void transcode(route, req, res, url, segments, contextValues).catch((error: unknown) => {
        if (res.headersSent) {
          options.logger.warn({ err: error, route: route.template }, 'rest answer cut off');
          res.destroy();
          return;
        }
        if (error instanceof RestError) {
          sendError(res, error.status, error.code, error.message);
        } else {
          options.logger.error({ err: error, route: route.template }, 'rest transcoder failed');
          sendError(res, 500, 'internal', 'internal error');
        }
      });
      return true;
    },
  };

  async function transcode(
    route: (typeof routes)[number],
    req: NodeRequest,
    res: NodeResponse,
    url: URL,
    segments: readonly string[],
    contextValues: ContextValues,
  ): Promise<void> {
    const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
    const multipart = route.body === '*' && route.upload && type === 'multipart/form-data';
    const message: JsonObject = {};
    let upload: Upload | undefined;
    if (multipart && route.upload) {
      upload = await readMultipart(req, route.method.input, route.upload, options.uploadMaxBytes);
      Object.assign(message, upload.fields);
    } else if (route.body !== undefined) {
      if (type !== '' && type !== 'application/json') {
        throw new RestError(
          415,
          'invalid_argument',
          route.upload
            ? 'Content-Type must be application/json or multipart/form-data'
            : 'Content-Type must be application/json',
        );
      }
      const body = await readJson(req, options.readMaxBytes);
      if (route.body === '*') {
        if (!isObject(body))
          throw new RestError(400, 'invalid_argument', 'body: must be a JSON object');
        Object.assign(message, body);
      } else {
        setPath(message, fieldPath(route.method.input, route.body, route.method), body);
      }
    }
    if (route.body !== '*') {
      for (const [key, value] of url.searchParams) {
        const fields = resolveFieldPath(route.method.input, key);
        // An unknown parameter goes on as it is: the handler's decoder refuses it by name.
        if (fields) appendPath(message, fields, fromText(fields.at(-1) as DescField, value));
        else message[key] = value;
      }
    }
    route.segments.forEach((segment, i) => {
      if ('variable' in segment) {
        const field = segment.variable.at(-1) as DescField;
        setPath(message, segment.variable, fromText(field, segments[i] ?? ''));
      }
    });

    const abort = new AbortController();
    res.once('close', () => abort.abort());
    const header = new Headers({ 'connect-protocol-version': '1' });
    for (const name of FORWARDED_HEADERS) {
      const value = req.headers[name];
      if (typeof value === 'string') header.set(name, value);
    }
    let body: JsonValue | AsyncIterable<Uint8Array> = message;
    if (upload) {
      // Binary, so that the file is not base64-inflated past the router's read limit.
      const request = requestWithFile(route.method.input, message, route.upload, upload.file);
      header.set('content-type', 'application/proto');
      body = (async function* () {
        yield request;
      })();
    } else {
      header.set('content-type', 'application/json');
    }
    const response = await route.handler({
      httpVersion: req.httpVersion,
      method: 'POST',
      url: new URL(procedurePath(route.method), url).toString(),
      header,
      body,
      signal: abort.signal,
      contextValues,
    });
    const answer = await asJsonAnswer(route, response, upload !== undefined);
    // HTTP/1.1 cannot take another request on a connection whose body was left unread.
    if (upload?.unread && req.httpVersion === '1.1') answer.header?.set('connection', 'close');
    await universalResponseToNodeResponse(answer, res);
    // HTTP/2: the answer is complete; tell the client to stop sending the rest.
    if (upload?.unread && req instanceof http2.Http2ServerRequest) {
      req.stream.close(http2.constants.NGHTTP2_NO_ERROR);
    }
  }
}

/** Request headers a REST call hands on to the handler. */
const FORWARDED_HEADERS = [
  'authorization',
  'user-agent',
  'x-request-id',
  'connect-timeout-ms',
  // W3C trace context: the call's span continues the caller's trace.
  'traceparent',
  'tracestate',
];

/** The Connect answer as REST JSON: errors and JSON pass through; binary is converted. */
async function asJsonAnswer(
  route: RestRoute,
  response: UniversalServerResponse,
  binary: boolean,
): Promise<UniversalServerResponse> {
  if (response.status !== 200 || (!binary && route.responseBody === undefined)) return response;
  const bytes = await readAll(response.body);
  const output = route.method.output;
  let json = binary
    ? toJson(output, fromBinary(output, bytes))
    : (JSON.parse(new TextDecoder().decode(bytes)) as JsonValue);
  if (route.responseBody !== undefined && isObject(json)) {
    for (const field of resolveFieldPath(output, route.responseBody) ?? []) {
      json = isObject(json) ? (json[field.jsonName] ?? null) : null;
    }
  }
  const text = new TextEncoder().encode(JSON.stringify(json));
  const header = new Headers(response.header);
  header.set('content-type', 'application/json');
  header.set('content-length', String(text.byteLength));
  return {
    status: 200,
    header,
    body: (async function* () {
      yield text;
    })(),
  };
}

/** Reads a JSON body of at most `limit` bytes; an empty body is `{}`. */
async function readJson(req: NodeRequest, limit: number): Promise<JsonValue> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit)
      throw new RestError(413, 'resource_exhausted', `body: larger than ${limit} bytes`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text) as JsonValue;
  } catch {
    // Never the parser's message: it quotes the body, which may hold health data.
    throw new RestError(400, 'invalid_argument', 'body: not valid JSON');
  }
}

function pathSegments(pathname: string): string[] | undefined {
  try {
    return pathname.slice(1).split('/').map(decodeURIComponent);
  } catch {
    return undefined;
  }
}

function matches(template: readonly Segment[], segments: readonly string[]): boolean {
  return (
    template.length === segments.length &&
    template.every((s, i) => ('literal' in s ? s.literal === segments[i] : segments[i] !== ''))
  );
}

function procedurePath(method: DescMethod): string {
  return `/${method.parent.typeName}/${method.name}`;
}

/** The Connect error body, so that a REST client reads one error shape. */
export function sendError(
  res: {
    writeHead(status: number, headers: Record<string, string>): unknown;
    end(body: string): unknown;
  },
  status: number,
  code: string,
  message: string,
  headers: Record<string, string> = {},
): void {
  const body = JSON.stringify({ code, message });
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json',
    'cache-control': 'private, no-store',
  });
  res.end(body);
}

async function readAll(body: AsyncIterable<Uint8Array> | undefined): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of body ?? []) chunks.push(chunk);
  return Buffer.concat(chunks);
}
