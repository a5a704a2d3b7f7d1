import { createRequire } from 'node:module';
import { TaskCancelledError, TimeoutStrategy, timeout } from 'cockatiel';
import {
  type Connection,
  ConnectionType,
  MediaMode,
  OpenVidu,
  OpenViduRole,
  Recording,
  RecordingMode,
  type Session,
} from 'openvidu-node-client';
import { DomainError, failedPrecondition } from '../domain/errors.js';
import type { LiveConnection, RecordingState, TokenRole, VideoProvider } from '../domain/ports.js';
import { providerSessionName } from './session-name.js';

/**
 * OpenVidu 2 through `openvidu-node-client` (REST API:
 * https://docs.openvidu.io/en/2.32.0/reference-docs/REST-API/). One session per
 * consultation under a custom id derived from it, one connection per participant,
 * recording on demand. The client answers an HTTP error as `Error("<status>")`; this
 * module turns those into the service's errors.
 */
export interface OpenViduOptions {
  /** The OpenVidu deployment, e.g. https://openvidu.example.org (its API is under /openvidu/api). */
  readonly url: string;
  readonly secret: string;
  /** The longest one call to OpenVidu may take. */
  readonly timeoutMs: number;
}

/** The doctor moderates, the patient publishes, an observer only subscribes. */
const ROLES: Record<TokenRole, OpenViduRole> = {
  doctor: OpenViduRole.MODERATOR,
  patient: OpenViduRole.PUBLISHER,
  observer: OpenViduRole.SUBSCRIBER,
};

/** Sessions the client keeps in memory at most; one evicted is fetched again when needed. */
const MAX_CACHED_SESSIONS = 1000;

/** A connection's `data`: the opaque participant id and nothing else. */
export function connectionData(participantId: string): string {
  return JSON.stringify({ participantId });
}

/** Reads the participant id back from a connection's `serverData` (or a webhook's). */
export function participantIdOf(serverData: unknown): string | undefined {
  if (typeof serverData !== 'string') return undefined;
  try {
    const parsed = JSON.parse(serverData) as { participantId?: unknown };
    return typeof parsed.participantId === 'string' ? parsed.participantId : undefined;
  } catch {
    return undefined;
  }
}

export function createOpenViduProvider(options: OpenViduOptions): VideoProvider {
  boundClientRequests(options.timeoutMs);
  const ov = new OpenVidu(options.url, options.secret);
  // The client logs every fetch to the console; the service's own logs say what matters.
  ov.enableProdMode();
  const host = new URL(options.url).host;
  const deadline = timeout(options.timeoutMs, TimeoutStrategy.Aggressive);
  const creating = new Map<string, Promise<Session>>();

  /** One call to OpenVidu, within the deadline; its failures in the service's terms. */
  async function call<T>(
    what: string,
    fn: (context: { signal: AbortSignal }) => Promise<T>,
  ): Promise<T> {
    try {
      return await deadline.execute(fn);
    } catch (error) {
      if (error instanceof TaskCancelledError) {
        throw new DomainError(
          'unavailable',
          `OpenVidu ${what}: no answer within ${options.timeoutMs} ms`,
          undefined,
          { cause: error },
        );
      }
      throw error;
    }
  }

  const cached = (sessionId: string) => ov.activeSessions.find((s) => s.sessionId === sessionId);
  const forget = (sessionId: string) => {
    ov.activeSessions = ov.activeSessions.filter((s) => s.sessionId !== sessionId);
  };

  /**
   * POST /sessions with the custom id: 200 creates it; 409 says it exists, and the
   * client then reads it (GET /sessions/{id}) to reuse it. Concurrent callers for one
   * id share the request.
   */
  function createOrReuse(sessionId: string): Promise<Session> {
    const pending = creating.get(sessionId);
    if (pending) return pending;
    forget(sessionId);
    const request = call('create session', () =>
      ov.createSession({
        customSessionId: sessionId,
        mediaMode: MediaMode.ROUTED,
        recordingMode: RecordingMode.MANUAL,
      }),
    )
      .then((session) => {
        const excess = ov.activeSessions.length - MAX_CACHED_SESSIONS;
        if (excess > 0) ov.activeSessions.splice(0, excess);
        return session;
      })
      .catch((error: unknown) => {
        throw failure('create session', error);
      })
      .finally(() => creating.delete(sessionId));
    creating.set(sessionId, request);
    return request;
  }

  /** The client's object for a session, known or read again. */
  const sessionFor = async (sessionId: string) =>
    cached(sessionId) ?? (await createOrReuse(sessionId));

  /**
   * The recording calls find the session in the client's list (and warn on the console
   * when it is not there): read the sessions, rather than create one that may be gone.
   */
  async function knowSession(sessionId: string): Promise<void> {
    if (!cached(sessionId)) await call('list sessions', () => ov.fetch());
  }

  /** A REST call of the service's own, for what the client cannot do without side effects. */
  function api(method: 'GET' | 'DELETE', path: string, signal: AbortSignal): Promise<Response> {
    return fetch(new URL(`/openvidu/api${path}`, options.url), {
      method,
      headers: { authorization: basicAuth(options.secret) },
      signal,
    });
  }

  async function createConnection(session: Session, participantId: string, role: TokenRole) {
    return call('create connection', () =>
      session.createConnection({
        type: ConnectionType.WEBRTC,
        role: ROLES[role],
        data: connectionData(participantId),
      }),
    );
  }

  return {
    name: 'openvidu',

    async ensureSession(consultationId) {
      const session = await createOrReuse(providerSessionName(consultationId));
      return { sessionId: session.sessionId };
    },

    async issueToken({ sessionId, participantId, role, expiresAt }) {
      let connection: Connection;
      try {
        const session = await sessionFor(sessionId);
        connection = await createConnection(session, participantId, role);
      } catch (error) {
        if (httpStatus(error) !== 404) throw failure('create connection', error);
        // OpenVidu forgot the session (idle clean-up or a restart): create it again
        // under the same id, so the participants still meet.
        const session = await createOrReuse(sessionId);
        connection = await createConnection(session, participantId, role).catch((retry) => {
          throw failure('create connection', retry);
        });
      }
      // The token is what openvidu-browser's Session.connect takes; OpenVidu tokens do
      // not expire by time, the join window bounds them in the service.
      return { token: connection.token, joinUrl: connection.token, expiresAt };
    },

    async endSession(sessionId) {
      // DELETE /sessions/{id} itself: the client's Session.close() needs the session object,
      // and getting one for a session that is gone means POST /sessions, which creates it
      // again (with its sessionCreated and sessionDestroyed webhooks) only to close it.
      const status = await call('close session', async ({ signal }) => {
        const response = await api('DELETE', `/sessions/${encodeURIComponent(sessionId)}`, signal);
        await response.body?.cancel();
        return response.status;
      }).catch((error: unknown) => {
        throw failure('close session', error);
      });
      // 404: already closed, which is what was asked.
      if (status !== 204 && status !== 404) {
        throw failure('close session', new Error(String(status)));
      }
      forget(sessionId);
    },

    async liveSessions(sessionIds) {
      // One GET /sessions?pendingConnections=true for the whole batch; it also brings the
      // client's own session list up to date.
      await call('list sessions', () => ov.fetch()).catch((error: unknown) => {
        throw failure('list sessions', error);
      });
      const live = new Map<string, LiveConnection[]>();
      for (const sessionId of sessionIds) {
        const session = cached(sessionId);
        if (!session) continue;
        live.set(
          sessionId,
          session.activeConnections.map((c) => ({
            connectionId: c.connectionId,
            participantId: participantIdOf(c.serverData),
            joinedAt: new Date(c.activeAt),
          })),
        );
      }
      return live;
    },

    recording: {
      async start(sessionId) {
        try {
          await knowSession(sessionId);
          const recording = await call('start recording', () =>
            ov.startRecording(sessionId, {
              outputMode: Recording.OutputMode.COMPOSED,
              hasAudio: true,
              hasVideo: true,
            }),
          );
          return { recordingId: recording.id };
        } catch (error) {
          switch (httpStatus(error)) {
            case 404:
              throw failedPrecondition('the video session is closed; join the consultation first');
            case 406:
              throw failedPrecondition('recording needs someone connected to the video session');
            case 409: {
              // Already being recorded (a retried call): answer that recording.
              const recordings = await call('list recordings', () => ov.listRecordings());
              const current = recordings.find(
                (r) =>
                  r.sessionId === sessionId &&
                  (r.status === Recording.Status.started || r.status === Recording.Status.starting),
              );
              if (current) return { recordingId: current.id };
              throw failure('start recording', error);
            }
            case 501:
              throw failedPrecondition('recording is disabled on this OpenVidu server');
            default:
              throw failure('start recording', error);
          }
        }
      },

      async stop(sessionId, recordingId) {
        try {
          await knowSession(sessionId);
          // OpenVidu CE answers the recording `ready`, its file processed; the webhooks
          // (`stopped`, then `ready`) bring that to the consultation.
          await call('stop recording', () => ov.stopRecording(recordingId));
        } catch (error) {
          const status = httpStatus(error);
          if (status === 404) return; // stopped and gone, or never there
          if (status === 406) {
            throw failedPrecondition('the recording is still starting; stop it again in a moment');
          }
          throw failure('stop recording', error);
        }
      },

      async status(recordingId): Promise<RecordingState | undefined> {
        try {
          const recording = await call('get recording', () => ov.getRecording(recordingId));
          return { status: recording.status, url: recording.url || undefined };
        } catch (error) {
          if (httpStatus(error) === 404) return undefined;
          throw failure('get recording', error);
        }
      },
    },

    async health() {
      // GET /config: the cheapest authenticated call; it proves the URL and the secret.
      try {
        const response = await api('GET', '/config', AbortSignal.timeout(options.timeoutMs));
        if (!response.ok) {
          const why = response.status === 401 ? 'refused the secret' : `HTTP ${response.status}`;
          return { healthy: false, detail: `OpenVidu at ${host}: ${why}` };
        }
        const config = (await response.json()) as { VERSION?: unknown };
        return { healthy: true, detail: `OpenVidu ${String(config.VERSION ?? '')} at ${host}` };
      } catch (error) {
        return { healthy: false, detail: `OpenVidu at ${host}: ${describe(error)}` };
      }
    },
  };
}

/** The HTTP status of a client failure: it rejects with `Error("404")` and the like. */
function httpStatus(error: unknown): number | undefined {
  return error instanceof Error && /^\d{3}$/.test(error.message)
    ? Number(error.message)
    : undefined;
}

/** A failure of OpenVidu itself: UNAVAILABLE to callers, counted by its circuit breaker. */
function failure(what: string, error: unknown): DomainError {
  if (error instanceof DomainError) return error;
  return new DomainError('unavailable', `OpenVidu ${what} failed: ${describe(error)}`, undefined, {
    cause: error,
  });
}

function describe(error: unknown): string {
  const status = httpStatus(error);
  if (status === 401) return 'HTTP 401 (the secret is wrong)';
  if (status) return `HTTP ${status}`;
  // With no answer, the client rejects with a request object rather than a message.
  if (error instanceof Error && error.name === 'TimeoutError') return 'no answer in time';
  return 'no answer (unreachable)';
}

function basicAuth(secret: string): string {
  return `Basic ${Buffer.from(`OPENVIDUAPP:${secret}`).toString('base64')}`;
}

/**
 * `openvidu-node-client` sends every request through the default instance of its own
 * axios, which waits forever by default; give that instance the same deadline, so a
 * hung OpenVidu does not keep sockets open after the call has timed out here.
 */
function boundClientRequests(timeoutMs: number): void {
  const requireFromClient = createRequire(
    createRequire(import.meta.url).resolve('openvidu-node-client'),
  );
  const axios = requireFromClient('axios') as { defaults: { timeout?: number } };
  axios.defaults.timeout = Math.max(axios.defaults.timeout ?? 0, timeoutMs);
}
