import { createHash, timingSafeEqual } from 'node:crypto';
import { ExponentialBackoff, handleAll, retry } from 'cockatiel';
import type { Logger } from 'pino';
import type { DisconnectReason } from '../domain/attendance.js';
import type { RecordingState } from '../domain/ports.js';
import { participantIdOf } from '../providers/openvidu-provider.js';
import type {
  Attendance,
  AttendanceOutcome,
  ConnectionEvent,
  RecordingChangedEvent,
  SessionClosedEvent,
} from '../video/attendance.js';

/**
 * OpenVidu 2 webhooks (https://docs.openvidu.io/en/2.32.0/reference-docs/openvidu-server-webhook/):
 * flat JSON posted for every event, unsigned; OpenVidu adds the headers configured in
 * OPENVIDU_WEBHOOK_HEADERS, which is how the shared secret arrives. They are lossy and
 * unordered, so they are deduplicated and the reconciler repairs what they miss.
 */
export interface WebhookRequest {
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
}

/** The largest webhook body accepted; OpenVidu's are a few hundred bytes. */
export const MAX_WEBHOOK_BYTES = 64 * 1024;

/** OpenVidu's `reason` of participantLeft, as the service's one vocabulary. */
const REASONS: Record<string, DisconnectReason> = {
  disconnect: 'left',
  networkDisconnect: 'network',
  forceDisconnectByUser: 'removed',
  forceDisconnectByServer: 'removed',
  sessionClosedByServer: 'session_closed',
  lastParticipantLeft: 'session_closed',
  openviduServerStopped: 'provider_failure',
  nodeCrashed: 'provider_failure',
  mediaServerDisconnect: 'provider_failure',
  mediaServerReconnect: 'provider_failure',
};

const RECORDING_STATUS: Record<string, RecordingChangedEvent['status']> = {
  started: 'started',
  stopped: 'stopped',
  ready: 'ready',
  failed: 'failed',
};

export function normalizeOpenViduReason(reason: unknown): DisconnectReason {
  return (typeof reason === 'string' && REASONS[reason]) || 'unknown';
}

/** Reads a webhook into what attendance understands; undefined for events it ignores. */
export function parseOpenViduWebhook(
  json: unknown,
):
  | { connection: ConnectionEvent }
  | { sessionClosed: SessionClosedEvent }
  | { recording: RecordingChangedEvent }
  | undefined {
  if (!json || typeof json !== 'object') return undefined;
  const e = json as Record<string, unknown>;
  const sessionId = typeof e.sessionId === 'string' ? e.sessionId : undefined;
  const timestamp = typeof e.timestamp === 'number' ? e.timestamp : undefined;
  if (!sessionId || timestamp === undefined) return undefined;
  // What the event is about: a recording's id and status, since OpenVidu CE sends its
  // `stopped` and `ready` together, often in the same millisecond.
  const subject =
    e.event === 'recordingStatusChanged'
      ? [e.id, e.status]
      : [e.connectionId ?? e.participantId ?? ''];
  const eventId = `openvidu:${createHash('sha256')
    .update(JSON.stringify([e.event, sessionId, ...subject, timestamp]))
    .digest('hex')}`;
  const at = new Date(timestamp);

  if (e.event === 'participantJoined' || e.event === 'participantLeft') {
    // connectionId since OpenVidu 2.16; participantId before.
    const connectionId = String(e.connectionId ?? e.participantId ?? '');
    if (!connectionId) return undefined;
    return {
      connection: {
        eventId,
        provider: 'openvidu',
        sessionId,
        connectionId,
        participantId: participantIdOf(e.serverData),
        kind: e.event === 'participantJoined' ? 'joined' : 'left',
        at,
        joinedAt: typeof e.startTime === 'number' ? new Date(e.startTime) : undefined,
        reason: e.event === 'participantLeft' ? normalizeOpenViduReason(e.reason) : undefined,
      },
    };
  }
  if (e.event === 'recordingStatusChanged' && typeof e.id === 'string') {
    // OpenVidu recording statuses: starting, started, stopped, ready, failed.
    const status = RECORDING_STATUS[String(e.status)];
    if (!status) return undefined;
    return {
      recording: {
        eventId,
        provider: 'openvidu',
        sessionId,
        recordingId: e.id,
        status,
        url: typeof e.url === 'string' && e.url ? e.url : undefined,
        at,
      },
    };
  }
  if (e.event === 'sessionDestroyed') {
    return { sessionClosed: { eventId, provider: 'openvidu', sessionId, at } };
  }
  return undefined;
}

/**
 * Accepts OpenVidu's webhooks: only with the configured secret header (compared in
 * constant time), answered at once, then applied one after another in arrival order.
 */
export function createOpenViduWebhookReceiver(options: {
  secret: string;
  headerName: string;
  attendance: Attendance;
  logger: Logger;
  /**
   * The recording's URL, which OpenVidu's `recordingStatusChanged` does not carry: asked
   * of OpenVidu (GET /recordings/{id}) when a recording is ready.
   */
  recordingStatus?: ((recordingId: string) => Promise<RecordingState | undefined>) | undefined;
  /** Told how each accepted webhook ended (metrics). */
  onOutcome?: (outcome: AttendanceOutcome | 'failed') => void;
}) {
  const expected = digest(options.secret);
  const header = options.headerName.toLowerCase();
  let queue: Promise<void> = Promise.resolve();
  const urlRetry = retry(handleAll, {
    maxAttempts: 3,
    backoff: new ExponentialBackoff({ initialDelay: 200 }),
  });

  async function withUrl(event: RecordingChangedEvent): Promise<RecordingChangedEvent> {
    if (event.status !== 'ready' || event.url || !options.recordingStatus) return event;
    const lookup = options.recordingStatus;
    // The URL is the point of `ready`: worth a few tries while OpenVidu hiccups.
    const state = await urlRetry.execute(() => lookup(event.recordingId));
    return { ...event, url: state?.url };
  }

  return {
    /** Answers the HTTP status; the work itself happens after the answer. */
    receive(request: WebhookRequest): 200 | 400 | 401 {
      const given = request.headers[header];
      const value = Array.isArray(given) ? given[0] : given;
      if (!value || !timingSafeEqual(digest(value), expected)) return 401;
      let json: unknown;
      try {
        json = JSON.parse(request.body.toString('utf8'));
      } catch {
        return 400;
      }
      const parsed = parseOpenViduWebhook(json);
      if (!parsed) return 200;
      queue = queue.then(async () => {
        try {
          const outcome =
            'connection' in parsed
              ? await options.attendance.recordConnection(parsed.connection)
              : 'recording' in parsed
                ? await options.attendance.recordingChanged(await withUrl(parsed.recording))
                : await options.attendance.sessionClosed(parsed.sessionClosed);
          options.onOutcome?.(outcome);
          options.logger.info(
            { event: (json as { event?: string }).event, outcome },
            'openvidu webhook applied',
          );
        } catch (error) {
          // Lost here means repaired by the reconciler on its next pass.
          options.onOutcome?.('failed');
          options.logger.warn({ err: error }, 'openvidu webhook failed');
        }
      });
      return 200;
    },
    /** Resolves once every accepted webhook has been applied (tests, shutdown). */
    drain: () => queue,
  };
}

/** Fixed-length digests, so the comparison takes the same time whatever the input. */
function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}
