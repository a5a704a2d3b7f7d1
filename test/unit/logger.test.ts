import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, safeError } from '../../src/logger.js';

const MARKER = 'PHI-MARKER-Maria-Gonzalez';

/** What a PostgreSQL error looks like once the ORM has wrapped it. */
function databaseError(): Error {
  const error = new Error(
    `unsupported Unicode escape sequence\n - detail: \\u0000 cannot be converted to text. ${MARKER}`,
  );
  Object.assign(error, {
    code: '22P05',
    routine: 'json_errsave_error',
    where: `JSON data, line 1: {"description":"${MARKER}`,
    detail: `\\u0000 cannot be converted to text. ${MARKER}`,
    query: `insert into "outbox_message" ("payload") values ('{"description":"${MARKER}"}')`,
    params: [MARKER],
  });
  return error;
}

describe('error logging', () => {
  it('keeps the type, code, stack frames and message, never what echoes input', () => {
    const logged = safeError(databaseError());
    expect(logged).toMatchObject({
      type: 'Error',
      code: '22P05',
      routine: 'json_errsave_error',
      message: 'unsupported Unicode escape sequence',
    });
    expect(logged.stack).toMatch(/^\s+at /);
    expect(JSON.stringify(logged)).not.toContain(MARKER);
  });

  it('masks quoted values in messages, also in causes', () => {
    const parse = (() => {
      try {
        JSON.parse(`"${MARKER}`);
      } catch (error) {
        return error;
      }
    })();
    const uuid = new Error(`invalid input syntax for type uuid: "${MARKER}"`, { cause: parse });
    const logged = safeError(uuid);
    expect(logged.message).toBe('invalid input syntax for type uuid: "…"');
    expect(JSON.stringify(logged)).not.toContain(MARKER);
    expect(safeError(new Error('plain words stay')).message).toBe('plain words stay');
    expect(safeError(`string ${MARKER}`)).toEqual({
      type: 'string',
      message: '[not an Error: withheld]',
    });
  });

  it('is what the service logger does with every err', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString('utf8'));
        done();
      },
    });
    createLogger('info', sink).error({ err: databaseError() }, 'rpc failed');
    expect(lines.join('')).toContain('22P05');
    expect(lines.join('')).not.toContain(MARKER);
  });
});
