import { type Client, Code, ConnectError, createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-web';
import { VideoService } from '../../gen/video/v1/video_service_pb.js';

export type VideoClient = Client<typeof VideoService>;

/** The signed-in user's connection to the service, for as long as they stay signed in. */
export interface Session {
  readonly client: VideoClient;
  /** Aborted when the user signs out (or is signed out). */
  readonly signal: AbortSignal;
  /** Back to the sign-in form, saying why (the token expired, was refused…). */
  signOut(reason?: string): void;
}

/** Who the token says the user is (read for display only: the service checks it). */
export interface Claims {
  readonly userId: string;
  readonly role: string;
  readonly clinicId: string;
  /** When the token expires. */
  readonly expiresAt: Date | undefined;
}

/** The first thing in `text` shaped like a JWT (so pasting a command's whole output works). */
export const findToken = (text: string): string | undefined =>
  /[\w-]+\.[\w-]+\.[\w-]+/.exec(text)?.[0];

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
  // fetch failed: the service is down, unreachable, or refuses this page's origin (CORS).
  if (e.code === Code.Unknown || e.code === Code.Unavailable) {
    return 'the service cannot be reached right now';
  }
  return e.rawMessage;
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
  Code.FailedPrecondition,
]);

/**
 * Follows a server stream until `finished()` says there is nothing more to follow, the
 * session ends, or an error another attempt will not cure. A stream that is cut (network,
 * proxy) or ended by a stopping service is opened again (after 1, 2, 4… up to 15 s); its
 * first message is the whole current state, so nothing is missed meanwhile. A refused
 * token signs the user out.
 */
export async function follow<T>(
  session: Session,
  open: (signal: AbortSignal) => AsyncIterable<T>,
  onMessage: (message: T) => void,
  onState: (state: StreamState) => void,
  finished: () => boolean,
  signal: AbortSignal = session.signal,
): Promise<void> {
  for (let attempt = 0; !signal.aborted; attempt++) {
    let reason = 'the service closed the stream';
    try {
      for await (const message of open(signal)) {
        attempt = 0;
        onState({ kind: 'live' });
        onMessage(message);
      }
      if (finished()) {
        onState({ kind: 'ended' });
        return;
      }
    } catch (error) {
      if (signal.aborted) return;
      const e = ConnectError.from(error);
      if (e.code === Code.Unauthenticated) {
        session.signOut(`Signed out: ${e.rawMessage}.`);
        return;
      }
      if (FINAL.has(e.code)) {
        onState({ kind: 'failed', reason: describeError(e) });
        return;
      }
      reason = describeError(e);
    }
    onState({ kind: 'reconnecting', reason });
    await pause(Math.min(15_000, 1_000 * 2 ** attempt), signal);
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

/** Runs a call for a button or form, signing out on a refused token; answers its error. */
export async function attempt(session: Session, call: () => Promise<unknown>) {
  try {
    await call();
    return undefined;
  } catch (error) {
    if (ConnectError.from(error).code === Code.Unauthenticated) {
      session.signOut(`Signed out: ${ConnectError.from(error).rawMessage}.`);
    }
    return describeError(error);
  }
}
