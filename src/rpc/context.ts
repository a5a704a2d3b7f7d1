import { createContextKey } from '@connectrpc/connect';
import type { Principal } from '../domain/access.js';

/**
 * What a call carries besides its message, set by the HTTP server and the interceptors
 * and read by the handlers: who calls, from where, under which request id.
 */

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
