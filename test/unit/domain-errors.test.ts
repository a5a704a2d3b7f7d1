import { describe, expect, it } from 'vitest';
import {
  DomainError,
  failedPrecondition,
  invalidArgument,
  notFound,
  permissionDenied,
} from '../../src/domain/errors.js';

const facts = (error: DomainError) => ({
  code: error.code,
  message: error.message,
  field: error.field,
});

describe('domain errors', () => {
  it('reads as a DomainError in logs and stack traces', () => {
    const error = notFound('consultation');
    expect(error).toBeInstanceOf(Error);
    expect(String(error)).toBe('DomainError: consultation not found');
  });

  it('builds each kind of refusal with its code, message and field', () => {
    expect(facts(notFound('consultation'))).toEqual({
      code: 'not_found',
      message: 'consultation not found',
      field: undefined,
    });
    expect(facts(failedPrecondition('already ended'))).toEqual({
      code: 'failed_precondition',
      message: 'already ended',
      field: undefined,
    });
    expect(facts(invalidArgument('page_size', 'must be at most 100'))).toEqual({
      code: 'invalid_argument',
      message: 'page_size: must be at most 100',
      field: 'page_size',
    });
    expect(facts(permissionDenied('role patient may not consultation.start'))).toEqual({
      code: 'permission_denied',
      message: 'role patient may not consultation.start',
      field: undefined,
    });
  });

  it('keeps the cause for the logs', () => {
    const cause = new Error('connection reset');
    expect(new DomainError('unavailable', 'try again', undefined, { cause }).cause).toBe(cause);
  });
});
