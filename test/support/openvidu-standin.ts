/**
 * A stand-in OpenVidu 2 server, and the test suite's one fake of OpenVidu: a real HTTP
 * server that answers the part of the REST API the service calls the way OpenVidu CE
 * 2.32 does, keeps its sessions, connections and recordings in memory, and produces the
 * webhook events OpenVidu would. Tests drive what a browser would do (join, leave) and
 * what an operator would break (failures, slowness, a restart that forgets every session).
 *
 * The behaviours it follows, each with the documentation section it comes from, are
 * listed in openvidu-standin.md; the code is in openvidu-standin/ (server.ts for the
 * operations, sessions.ts, recordings.ts, webhooks.ts, http.ts).
 */
import { StandIn } from './openvidu-standin/server.js';
import type { WebhookEvent } from './openvidu-standin/webhooks.js';

export type { WebhookEvent } from './openvidu-standin/webhooks.js';

export interface StandInRequest {
  readonly method: string;
  /** With the query string. */
  readonly path: string;
  /** The status answered; 0 until answered, and for failWith('reset'). */
  status: number;
}

export interface OpenViduStandIn {
  /** Base URL, e.g. http://127.0.0.1:41234 (OpenVidu's API lives under /openvidu/api). */
  readonly url: string;
  readonly secret: string;
  /** Every API request received, in order. */
  readonly requests: readonly StandInRequest[];
  /** Every webhook event the server produced, in order (delivered or not). */
  readonly events: readonly WebhookEvent[];
  /** Every API call answers this bare HTTP status until called with undefined; 'reset' destroys the socket instead. */
  failWith(status: number | 'reset' | undefined): void;
  /** Every API answer waits this long first (0 = none). */
  delay(ms: number): void;
  /** Forgets every session and its connections, as after its idle clean-up or a restart (no webhooks). */
  forgetSessions(): void;
  /** Where and how webhooks go: like OPENVIDU_WEBHOOK_ENDPOINT and OPENVIDU_WEBHOOK_HEADERS. autoDeliver=false: events are only recorded in `events`, tests deliver them with deliver(). */
  configureWebhook(
    target: { url: string; headers: Record<string, string>; autoDeliver: boolean } | undefined,
  ): void;
  /** POSTs one event (flat JSON, as OpenVidu does) to the webhook target; answers the HTTP status. */
  deliver(event: WebhookEvent): Promise<number>;
  /** What openvidu-browser does with a token: the pending connection becomes active (activeAt = at ?? now) and participantJoined is produced. Answers the connection id; throws if the token is unknown or used. */
  join(token: string, options?: { at?: number; platform?: string }): string;
  /**
   * A participant leaves (reason one of participantLeft's, default 'disconnect'). When the
   * last one leaves, the session closes at once (lastParticipantLeft), or, when it is being
   * recorded, after the recording autostop timeout (automaticStop).
   */
  leave(connectionId: string, options?: { at?: number; reason?: string }): void;
  /** A live session as GET /sessions/{id}?pendingConnections=true answers it. */
  session(sessionId: string): unknown | undefined;
  close(): Promise<void>;
}

export async function startOpenViduStandIn(options: {
  secret: string;
  /** Like OPENVIDU_RECORDING; default true. false: recording operations answer 501. */
  recordingEnabled?: boolean;
  /**
   * Like OPENVIDU_RECORDING_AUTOSTOP_TIMEOUT (120 s by default), in milliseconds so tests
   * can make it short.
   */
  recordingAutostopTimeoutMs?: number;
}): Promise<OpenViduStandIn> {
  const standIn = new StandIn(
    options.secret,
    options.recordingEnabled ?? true,
    options.recordingAutostopTimeoutMs ?? 120_000,
  );
  await standIn.listen();
  return standIn;
}
