/**
 * The stand-in's server: the REST operations the service calls, what OpenVidu CE does
 * around them (closing sessions, stopping recordings, its webhooks), and the test
 * controls. Comments cite the section each behaviour comes from (see
 * ../openvidu-standin.md for the list and the addresses).
 */
import type { OpenViduStandIn } from '../openvidu-standin.js';
import { ApiError, type ApiRequest, ApiServer, isString, type Reply, read, route } from './http.js';
import {
  makeReady,
  newRecording,
  type RecordingState,
  readRecordingSettings,
  recordingJson,
} from './recordings.js';
import {
  activate,
  type ConnectionState,
  connectionJson,
  connectionsOf,
  newConnection,
  newSession,
  randomId,
  readSessionSettings,
  type SessionState,
  sessionJson,
} from './sessions.js';
import {
  participantJoined,
  participantLeft,
  recordingStatusChanged,
  sessionCreated,
  sessionDestroyed,
  type WebhookEvent,
  Webhooks,
  type WebhookTarget,
} from './webhooks.js';

const VERSION = '2.32.0';
/** What join() reports as the participant's platform when the test gives none. */
const DEFAULT_PLATFORM = 'Chrome 126.0.0.0 on Linux 64-bit';
/** WEBHOOK#participantleft: the documented `reason` values. */
const LEFT_REASONS = [
  'disconnect',
  'forceDisconnectByUser',
  'forceDisconnectByServer',
  'sessionClosedByServer',
  'networkDisconnect',
  'mediaServerDisconnect',
  'nodeCrashed',
  'openviduServerStopped',
];

export class StandIn implements OpenViduStandIn {
  private readonly sessions = new Map<string, SessionState>();
  private readonly recordings = new Map<string, RecordingState>();
  /** Recorded sessions nobody is connected to, each waiting for its automatic stop. */
  private readonly autostops = new Map<string, NodeJS.Timeout>();
  private readonly webhooks = new Webhooks();
  private readonly http: ApiServer;

  constructor(
    readonly secret: string,
    private readonly recordingEnabled: boolean,
    private readonly autostopTimeoutMs: number,
  ) {
    // The operations of REST#index the service calls, and nothing else.
    this.http = new ApiServer(secret, [
      route('POST', '/sessions', (r) => this.initializeSession(r), 'optional'),
      route('GET', '/sessions', ({ query }) => ok(this.listSessions(query))),
      route('GET', '/sessions/:id', ({ params, query }) =>
        ok(sessionJson(this.requireSession(params[0]), withPending(query))),
      ),
      route('DELETE', '/sessions/:id', ({ params }) => {
        // REST#delete-session: 204, or 404 for no such session.
        this.closeSession(this.requireSession(params[0]), 'sessionClosedByServer', Date.now());
        return { status: 204 };
      }),
      route(
        'POST',
        '/sessions/:id/connection',
        ({ params, body }) => {
          // REST#post-connection: 200 with the Connection, 400 body problem, 404 no such session.
          const session = this.requireSession(params[0]);
          const connection = newConnection(session, body ?? {}, this.url);
          session.connections.set(connection.id, connection);
          return ok(connectionJson(connection));
        },
        'optional',
      ),
      route('POST', '/recordings/start', (r) => this.startRecording(r), 'required'),
      route('POST', '/recordings/stop/:id', ({ params }) => this.stopRecording(params[0])),
      route('GET', '/recordings', () => {
        // REST#get-all-recordings: {count, items}; 501.
        this.requireRecordingModule();
        const items = [...this.recordings.values()].map(recordingJson);
        return ok({ count: items.length, items });
      }),
      route('GET', '/recordings/:id', ({ params }) => {
        // REST#get-recording: 200, 404, 501.
        this.requireRecordingModule();
        const recording = this.recordings.get(params[0] ?? '');
        if (!recording) throw new ApiError(404);
        return ok(recordingJson(recording));
      }),
      route('GET', '/config', () => ok(this.config())),
    ]);
  }

  get url(): string {
    return this.http.url;
  }

  get requests() {
    return this.http.requests;
  }

  get events(): readonly WebhookEvent[] {
    return this.webhooks.events;
  }

  listen(): Promise<void> {
    return this.http.listen();
  }

  async close(): Promise<void> {
    for (const timer of this.autostops.values()) clearTimeout(timer);
    await this.http.close();
    await this.webhooks.close();
  }

  // --- Test controls ---------------------------------------------------------------------

  failWith(status: number | 'reset' | undefined): void {
    this.http.failure = status;
  }

  delay(ms: number): void {
    this.http.delayMs = Math.max(0, ms);
  }

  forgetSessions(): void {
    // Recordings outlive their session, as recorded files do.
    for (const timer of this.autostops.values()) clearTimeout(timer);
    this.autostops.clear();
    this.sessions.clear();
  }

  configureWebhook(target: WebhookTarget | undefined): void {
    this.webhooks.configure(target);
  }

  deliver(event: WebhookEvent): Promise<number> {
    return this.webhooks.deliver(event);
  }

  join(token: string, options: { at?: number; platform?: string } = {}): string {
    const connection = this.pendingConnection(token);
    const session = connection && this.sessions.get(connection.sessionId);
    if (!connection || !session) throw new Error(`no pending connection has token ${token}`);
    activate(connection, {
      at: options.at ?? Date.now(),
      platform: options.platform ?? DEFAULT_PLATFORM,
      ip: '127.0.0.1', // the participant's IP as OpenVidu sees it: this machine
    });
    this.webhooks.emit(participantJoined(connection));
    // Recording#automatic-stop-of-recordings: someone publishing within the timeout
    // aborts it (no media here: a participant who joins counts as publishing).
    this.cancelAutostop(session.id);
    return connection.id;
  }

  leave(connectionId: string, options: { at?: number; reason?: string } = {}): void {
    const reason = options.reason ?? 'disconnect';
    if (!LEFT_REASONS.includes(reason)) {
      throw new Error(`${reason} is not a participantLeft reason`);
    }
    const session = [...this.sessions.values()].find(
      (s) => s.connections.get(connectionId)?.status === 'active',
    );
    if (!session) throw new Error(`no active connection ${connectionId}`);
    const at = options.at ?? Date.now();
    const connection = session.connections.get(connectionId) as ConnectionState;
    session.connections.delete(connectionId);
    this.webhooks.emit(participantLeft(connection, reason, at));
    if (connectionsOf(session, false).length > 0) return;
    if (session.recordingId === undefined) {
      // WEBHOOK#sessiondestroyed: OpenVidu 2 closes a session its last participant left.
      this.closeSession(session, 'lastParticipantLeft', at);
    } else {
      // Recording#automatic-stop-of-recordings: a recorded session stays open, recording,
      // until the timeout; then the recording stops and the session closes (automaticStop).
      const timer = setTimeout(() => {
        this.autostops.delete(session.id);
        this.closeSession(session, 'automaticStop', Date.now());
      }, this.autostopTimeoutMs);
      this.autostops.set(session.id, timer.unref());
    }
  }

  session(sessionId: string): unknown | undefined {
    const session = this.sessions.get(sessionId);
    return session && sessionJson(session, true);
  }

  // --- Sessions --------------------------------------------------------------------------

  /** REST#post-session: 200 with the Session, 400 on a body problem, 409 when the custom id exists. */
  private initializeSession({ body }: ApiRequest): Reply {
    const settings = readSessionSettings(body ?? {});
    if (settings.customSessionId && this.sessions.has(settings.customSessionId)) {
      throw new ApiError(409);
    }
    // "If this parameter is an empty string or not sent at all, OpenVidu Server will
    // generate a random sessionId for you."
    const session = newSession(settings.customSessionId || randomId('ses_'), settings);
    this.sessions.set(session.id, session);
    this.webhooks.emit(sessionCreated(session));
    return ok(sessionJson(session, false));
  }

  /** REST#get-all-sessions: {numberOfElements, content}. */
  private listSessions(query: URLSearchParams) {
    const content = [...this.sessions.values()].map((s) => sessionJson(s, withPending(query)));
    return { numberOfElements: content.length, content };
  }

  /**
   * REST#delete-session: "all of its Connections, Streams and Recordings will be closed";
   * WEBHOOK#participantleft, #recordingstatuschanged and #sessiondestroyed carry the reason.
   */
  private closeSession(session: SessionState, reason: string, at: number): void {
    this.cancelAutostop(session.id);
    for (const connection of connectionsOf(session, false)) {
      this.webhooks.emit(participantLeft(connection, reason, at));
    }
    session.connections.clear();
    const recording = session.recordingId && this.recordings.get(session.recordingId);
    if (recording) this.stopNow(session, recording, reason, at);
    this.sessions.delete(session.id);
    this.webhooks.emit(sessionDestroyed(session, reason, at));
  }

  private requireSession(sessionId: string | undefined): SessionState {
    const session = this.sessions.get(sessionId ?? '');
    if (!session) throw new ApiError(404);
    return session;
  }

  private pendingConnection(token: string): ConnectionState | undefined {
    for (const session of this.sessions.values()) {
      for (const connection of session.connections.values()) {
        if (connection.token === token && connection.status === 'pending') return connection;
      }
    }
    return undefined;
  }

  private cancelAutostop(sessionId: string): void {
    clearTimeout(this.autostops.get(sessionId));
    this.autostops.delete(sessionId);
  }

  // --- Recordings ------------------------------------------------------------------------

  /** REST#post-recording-start (and every recording operation): 501 when recording is disabled. */
  private requireRecordingModule(): void {
    if (!this.recordingEnabled) throw new ApiError(501);
  }

  /**
   * REST#post-recording-start: 200 with the Recording (status `started`); 400 body problem;
   * 404 no such session; 406 nobody connected; 409 not ROUTED or already being recorded;
   * 422 out-of-range values; 501 recording disabled.
   */
  private startRecording({ body = {} }: ApiRequest): Reply {
    this.requireRecordingModule();
    const sessionId = read(body, 'session', isString);
    if (sessionId === undefined) throw new ApiError(400, '"session" parameter is mandatory');
    const session = this.requireSession(sessionId);
    if (session.settings.mediaMode !== 'ROUTED' || session.recordingId !== undefined) {
      throw new ApiError(409);
    }
    if (connectionsOf(session, false).length === 0) throw new ApiError(406);
    const settings = readRecordingSettings(body, session.settings.defaultRecordingProperties, 422);
    const recording = newRecording(this.nextRecordingId(session.id), session.id, settings);
    this.recordings.set(recording.id, recording);
    session.recordingId = recording.id;
    this.webhooks.emit(recordingStatusChanged(recording, recording.createdAt));
    return ok(recordingJson(recording));
  }

  /** REST#the-recording-object `id`: based on the session id; `<id>~1`, `<id>~2`... once taken. */
  private nextRecordingId(sessionId: string): string {
    let id = sessionId;
    for (let n = 1; this.recordings.has(id); n++) id = `${sessionId}~${n}`;
    return id;
  }

  /**
   * REST#post-recording-stop: 200 with the Recording, which OpenVidu CE answers `ready`
   * (REST#the-recording-object `status`); 404 unknown or no longer recording; 501. A
   * recording stopped while its session waits for the automatic stop also closes the
   * session (openvidu-server's RecordingManager; see openvidu-standin.md).
   */
  private stopRecording(recordingId: string | undefined): Reply {
    this.requireRecordingModule();
    const recording = this.recordings.get(recordingId ?? '');
    const session = recording && this.sessions.get(recording.sessionId);
    if (recording?.status !== 'started' || !session) throw new ApiError(404);
    const at = Date.now();
    if (this.autostops.has(session.id)) {
      this.closeSession(session, 'recordingStoppedByServer', at);
    } else {
      this.stopNow(session, recording, 'recordingStoppedByServer', at);
    }
    return ok(recordingJson(recording));
  }

  /**
   * WEBHOOK#recordingstatuschanged `stopped`, then `ready`: OpenVidu CE processes the file
   * before it answers, so both come at once; neither carries the url.
   */
  private stopNow(session: SessionState, recording: RecordingState, reason: string, at: number) {
    session.recordingId = undefined;
    recording.status = 'stopped';
    recording.reason = reason;
    this.webhooks.emit(recordingStatusChanged(recording, at));
    makeReady(recording, at, this.url);
    this.webhooks.emit(recordingStatusChanged(recording, at));
  }

  /** REST#get-config: a small part of the configuration OpenVidu CE answers. */
  private config() {
    const { hostname, port } = new URL(this.url);
    const webhook = this.webhooks.configured;
    return {
      VERSION,
      DOMAIN_OR_PUBLIC_IP: hostname,
      HTTPS_PORT: Number(port),
      OPENVIDU_PUBLICURL: this.url,
      OPENVIDU_CDR: false,
      OPENVIDU_RECORDING: this.recordingEnabled,
      OPENVIDU_RECORDING_VERSION: VERSION,
      OPENVIDU_RECORDING_PUBLIC_ACCESS: false,
      OPENVIDU_RECORDING_AUTOSTOP_TIMEOUT: this.autostopTimeoutMs / 1000,
      OPENVIDU_WEBHOOK: webhook !== undefined,
      OPENVIDU_WEBHOOK_ENDPOINT: webhook?.url ?? '',
      OPENVIDU_WEBHOOK_HEADERS: Object.entries(webhook?.headers ?? {}).map(
        ([name, value]) => `${name}: ${value}`,
      ),
    };
  }
}

function ok(body: unknown): Reply {
  return { status: 200, body };
}

/** REST#get-session, #get-all-sessions: `pendingConnections=true` adds the pending connections. */
function withPending(query: URLSearchParams): boolean {
  return query.get('pendingConnections') === 'true';
}
