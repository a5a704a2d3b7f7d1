/**
 * The webhook events OpenVidu produces (WEBHOOK#openvidu-webhook-events), and their
 * delivery: flat JSON POSTed to OPENVIDU_WEBHOOK_ENDPOINT with OPENVIDU_WEBHOOK_HEADERS.
 */
import { Agent, type ClientRequest, request } from 'node:http';
import { composedWithVideo, type RecordingState } from './recordings.js';
import type { ConnectionState, SessionState } from './sessions.js';

export interface WebhookEvent {
  readonly event: string;
  readonly sessionId: string;
  readonly timestamp: number;
  readonly [field: string]: unknown;
}

export interface WebhookTarget {
  readonly url: string;
  readonly headers: Record<string, string>;
  /** false: events are only recorded, and tests deliver them one by one. */
  readonly autoDeliver: boolean;
}

/** How long one webhook POST may take before it counts as failed. */
const WEBHOOK_TIMEOUT_MS = 5_000;

export class Webhooks {
  /** Every event produced, in order, delivered or not. */
  readonly events: WebhookEvent[] = [];
  private target: WebhookTarget | undefined;
  /** Automatic deliveries, chained so they leave one at a time and in order. */
  private deliveries: Promise<void> = Promise.resolve();
  private readonly agent = new Agent({ keepAlive: false });
  private readonly inFlight = new Set<ClientRequest>();

  get configured(): WebhookTarget | undefined {
    return this.target;
  }

  configure(target: WebhookTarget | undefined): void {
    this.target = target && { ...target, headers: { ...target.headers } };
  }

  emit(event: WebhookEvent): void {
    this.events.push(event);
    const target = this.target;
    if (!target?.autoDeliver) return;
    // WEBHOOK#how-your-webhook-endpoint-should-be: a failed POST is logged, "No further
    // action will be taken" (no retry).
    this.deliveries = this.deliveries.then(() =>
      this.post(target, event).then(
        () => undefined,
        () => undefined,
      ),
    );
  }

  deliver(event: WebhookEvent): Promise<number> {
    if (!this.target) return Promise.reject(new Error('no webhook target configured'));
    return this.post(this.target, event);
  }

  async close(): Promise<void> {
    for (const req of this.inFlight) req.destroy();
    await this.deliveries;
    this.agent.destroy();
  }

  /** WEBHOOK#format-of-the-webhook-events: flat JSON, POSTed with the configured headers. */
  private post(target: WebhookTarget, event: WebhookEvent): Promise<number> {
    const body = JSON.stringify(event);
    const headers: Record<string, string | number> = {};
    for (const [name, value] of Object.entries(target.headers)) {
      if (!/^content-(type|length)$/i.test(name)) headers[name] = value;
    }
    headers['content-type'] = 'application/json';
    headers['content-length'] = Buffer.byteLength(body);
    return new Promise<number>((resolve, reject) => {
      const req = request(
        target.url,
        { method: 'POST', headers, agent: this.agent, timeout: WEBHOOK_TIMEOUT_MS },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
          res.on('error', reject);
        },
      );
      this.inFlight.add(req);
      req.on('close', () => this.inFlight.delete(req));
      req.on('timeout', () => req.destroy(new Error('webhook POST timed out')));
      req.on('error', reject);
      req.end(body);
    });
  }
}

/** WEBHOOK#sessioncreated: at the end of a successful POST /sessions. */
export function sessionCreated(session: SessionState): WebhookEvent {
  return { event: 'sessionCreated', sessionId: session.id, timestamp: session.createdAt };
}

/** WEBHOOK#sessiondestroyed: startTime, duration in whole seconds, reason. */
export function sessionDestroyed(session: SessionState, reason: string, at: number): WebhookEvent {
  return {
    event: 'sessionDestroyed',
    sessionId: session.id,
    timestamp: at,
    ...endFields(session.createdAt, at, reason),
  };
}

/** WEBHOOK#participantjoined: triggered when the connection becomes active, at activeAt. */
export function participantJoined(connection: ConnectionState): WebhookEvent {
  return {
    event: 'participantJoined',
    sessionId: connection.sessionId,
    timestamp: connection.activeAt ?? Date.now(),
    ...participantFields(connection),
  };
}

/** WEBHOOK#participantleft: startTime is when the participant joined. */
export function participantLeft(
  connection: ConnectionState,
  reason: string,
  at: number,
): WebhookEvent {
  return {
    event: 'participantLeft',
    sessionId: connection.sessionId,
    timestamp: at,
    ...endFields(connection.activeAt ?? at, at, reason),
    ...participantFields(connection),
  };
}

/**
 * WEBHOOK#recordingstatuschanged: the documented fields (no url: the URL is asked of
 * GET /recordings/{id}); resolution and recordingLayout only for COMPOSED with video;
 * reason only once stopped.
 */
export function recordingStatusChanged(recording: RecordingState, at: number): WebhookEvent {
  const { settings } = recording;
  return {
    event: 'recordingStatusChanged',
    sessionId: recording.sessionId,
    timestamp: at,
    startTime: recording.createdAt,
    ...(recording.reason === undefined ? {} : { reason: recording.reason }),
    id: recording.id,
    name: settings.name,
    outputMode: settings.outputMode,
    ...(composedWithVideo(settings)
      ? { resolution: settings.resolution, recordingLayout: settings.recordingLayout }
      : {}),
    hasAudio: settings.hasAudio,
    hasVideo: settings.hasVideo,
    size: recording.size,
    duration: recording.duration,
    status: recording.status,
  };
}

function endFields(startTime: number, at: number, reason: string) {
  return { startTime, duration: Math.trunc((at - startTime) / 1000), reason };
}

/** WEBHOOK#participantjoined: the participant's fields. */
function participantFields(connection: ConnectionState) {
  return {
    connectionId: connection.id,
    location: connection.location,
    ip: connection.ip,
    platform: connection.platform,
    clientData: connection.clientData,
    serverData: connection.data,
  };
}
