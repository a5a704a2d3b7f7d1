/**
 * The domain's own error: what went wrong in the terms of the business, with no
 * transport in sight. One interceptor maps the code to a Connect code.
 */
export type DomainErrorCode =
  | 'invalid_argument'
  | 'not_found'
  | 'already_exists'
  | 'failed_precondition'
  | 'permission_denied'
  | 'unauthenticated'
  | 'resource_exhausted'
  | 'unavailable';

export class DomainError extends Error {
  constructor(
    readonly code: DomainErrorCode,
    message: string,
    /** For invalid_argument: the request field that is wrong (proto name). */
    readonly field?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'DomainError';
  }
}

export const notFound = (what: string) => new DomainError('not_found', `${what} not found`);
export const failedPrecondition = (message: string) =>
  new DomainError('failed_precondition', message);
export const invalidArgument = (field: string, message: string) =>
  new DomainError('invalid_argument', `${field}: ${message}`, field);
export const permissionDenied = (message: string) => new DomainError('permission_denied', message);
