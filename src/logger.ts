import { type Logger, pino } from 'pino';
import { traceFields } from './tracing.js';

/**
 * JSON logs with ids, never PHI: headers that carry credentials and the fields that
 * could hold names, free text or image bytes are censored wherever they appear, and an
 * error is logged through `safeError`, which drops whatever of it may echo input.
 */
export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level,
      base: { service: 'video-service' },
      // With tracing on, a line written inside a traced call names its trace and span.
      mixin: traceFields,
      serializers: { err: safeError },
      redact: {
        paths: [
          'authorization',
          '*.authorization',
          'headers.authorization',
          '*.headers.authorization',
          'token',
          '*.token',
          'description',
          '*.description',
          'content',
          '*.content',
          'name',
          '*.name',
          'displayName',
          '*.displayName',
        ],
        censor: '[redacted]',
      },
    },
    destination as pino.DestinationStream | undefined,
  );
}

/** Properties of an error that name things, never hold data: kept as they are. */
const IDENTIFIERS = [
  'code',
  'sqlState',
  'errno',
  'syscall',
  'routine',
  'severity',
  'schema',
  'table',
  'column',
  'constraint',
  'dataType',
  'status',
] as const;

/**
 * An error as the log may hold it. Errors echo input in many places: PostgreSQL's
 * `detail` and `where` (`JSON data, line 1: …` with the whole value), the driver's
 * `query` and `params`, messages that quote the offending value (`invalid input syntax
 * for type uuid: "…"`, JSON.parse's `"…" is not valid JSON`). So only this is kept: the
 * type, the first line of the message with every quoted part masked, the stack's frames
 * (code locations only), the identifiers above, and the cause, treated alike. Nothing else
 * of the error object is copied.
 */
export function safeError(error: unknown, depth = 0): Record<string, unknown> {
  if (!(error instanceof Error)) {
    return { type: typeof error, message: '[not an Error: withheld]' };
  }
  const out: Record<string, unknown> = {
    type: error.constructor?.name ?? error.name,
    message: maskQuoted(firstLine(error.message)),
  };
  const record = error as unknown as Record<string, unknown>;
  for (const key of IDENTIFIERS) {
    const value = record[key];
    if (typeof value === 'number' || (typeof value === 'string' && value.length <= 64)) {
      out[key] = typeof value === 'string' ? maskQuoted(value) : value;
    }
  }
  const frames = (error.stack ?? '')
    .split('\n')
    .filter((line) => /^\s+at /.test(line))
    .slice(0, 30);
  if (frames.length > 0) out.stack = frames.join('\n');
  if (error.cause !== undefined && depth < 3) out.cause = safeError(error.cause, depth + 1);
  return out;
}

function firstLine(text: string): string {
  const line = text.split('\n', 1)[0] ?? '';
  return line.length > 300 ? `${line.slice(0, 300)}…` : line;
}

/** `say "x" and 'y'` → `say "…" and '…'`; an unclosed quote masks the rest of the line. */
function maskQuoted(text: string): string {
  return text
    .replace(/"(?:[^"\\]|\\.)*("|$)/g, (_m, end: string) => `"…${end}`)
    .replace(/'(?:[^'\\]|\\.)*('|$)/g, (_m, end: string) => `'…${end}`)
    .replace(/`[^`]*(`|$)/g, (_m, end: string) => `\`…${end}`);
}
