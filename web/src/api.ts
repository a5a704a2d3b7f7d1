import { type Client, Code, ConnectError, createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-web';
import { VideoService } from '../../gen/video/v1/video_service_pb.js';

export type VideoClient = Client<typeof VideoService>;

/** Who the token says the user is (read for display only: the service checks it). */
export interface Claims {
  readonly userId: string;
  readonly role: string;
  readonly clinicId: string;
  /** When the token expires. */
  readonly expiresAt: Date | undefined;
}

/** The claims of a JWT, or undefined if it is not one. */
export function readClaims(token: string): Claims | undefined {
  try {
    const payload = token.split('.')[1] ?? '';
    const json = atob(payload.replaceAll('-', '+').replaceAll('_', '/'));
    const claims = JSON.parse(json) as Record<string, unknown>;
    const roles = Array.isArray(claims.roles) ? claims.roles : [];
    return {
      userId: String(claims.sub ?? ''),
      role: String(claims.role ?? roles[0] ?? ''),
      clinicId: String(claims.clinic_id ?? ''),
      expiresAt: typeof claims.exp === 'number' ? new Date(claims.exp * 1000) : undefined,
    };
  } catch {
    return undefined;
  }
}

/** The service's client over the Connect protocol (fetch), with the bearer token. */
export function videoClient(serviceUrl: string, token: string): VideoClient {
  const transport = createConnectTransport({
    baseUrl: serviceUrl,
    interceptors: [
      (next) => (request) => {
        request.header.set('authorization', `Bearer ${token}`);
        return next(request);
      },
    ],
  });
  return createClient(VideoService, transport);
}

/** What went wrong, for the person in front of the page. */
export function describeError(error: unknown): string {
  const e = ConnectError.from(error);
  return `${e.rawMessage} (${Code[e.code]})`;
}

/** The stream's state, as the page shows it. */
export type StreamState =
  | { readonly kind: 'live' }
  | { readonly kind: 'reconnecting'; readonly reason: string }
  | { readonly kind: 'ended' }
  | { readonly kind: 'failed'; readonly reason: string };

/** Errors that another attempt will not cure: the page says so and stops. */
const FINAL = new Set([
  Code.InvalidArgument,
  Code.NotFound,
  Code.PermissionDenied,
  Code.Unauthenticated,
  Code.FailedPrecondition,
]);

/**
 * Follows a server stream until it ends or `signal` aborts. A stream cut by the network,
 * a proxy or a restarting service is opened again (after 1, 2, 4… up to 15 s); its first
 * message is the whole current state, so nothing is missed meanwhile.
 */
export async function follow<T>(
  open: (signal: AbortSignal) => AsyncIterable<T>,
  onMessage: (message: T) => void,
  onState: (state: StreamState) => void,
  signal: AbortSignal,
): Promise<void> {
  for (let attempt = 0; !signal.aborted; attempt++) {
    try {
      for await (const message of open(signal)) {
        attempt = 0;
        onState({ kind: 'live' });
        onMessage(message);
      }
      onState({ kind: 'ended' });
      return;
    } catch (error) {
      if (signal.aborted) return;
      const e = ConnectError.from(error);
      if (FINAL.has(e.code)) {
        onState({ kind: 'failed', reason: describeError(e) });
        return;
      }
      onState({ kind: 'reconnecting', reason: describeError(e) });
      await pause(Math.min(15_000, 1_000 * 2 ** attempt), signal);
    }
  }
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}
