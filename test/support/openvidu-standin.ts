/**
 * A stand-in OpenVidu 2 server, and the test suite's one fake of OpenVidu: a real HTTP
 * server (node:http) that answers the REST API the way OpenVidu 2.32 does, keeps its
 * sessions, connections and recordings in memory, and produces the webhook events
 * OpenVidu would. Tests drive what a browser or time would do (a participant joins or
 * leaves, a recording's file becomes ready) and what an operator would break (failures,
 * slowness, a restart that forgets every session).
 *
 * It follows the published documentation; comments cite the section each behaviour
 * comes from, as
 *   REST#<anchor>    https://docs.openvidu.io/en/2.32.0/reference-docs/REST-API/#<anchor>
 *   WEBHOOK#<anchor> https://docs.openvidu.io/en/2.32.0/reference-docs/openvidu-server-webhook/#<anchor>
 *
 * Not modelled: media (streams, publishing, subscribing, webrtcConnection* events), so
 * recordingMode ALWAYS never starts a recording by itself; OpenVidu Pro features (media
 * nodes, broadcasting, PATCH of a connection); the recording auto-stop timeout (a
 * recording stops at once when its session closes).
 */
import { randomInt } from 'node:crypto';
import {
  Agent,
  type ClientRequest,
  createServer,
  type IncomingMessage,
  request,
  type ServerResponse,
  STATUS_CODES,
} from 'node:http';
import type { AddressInfo } from 'node:net';

export interface WebhookEvent {
  readonly event: string;
  readonly sessionId: string;
  readonly timestamp: number;
  readonly [field: string]: unknown;
}

export interface OpenViduStandIn {
  /** Base URL, e.g. http://127.0.0.1:41234 (OpenVidu's API lives under /openvidu/api). */
  readonly url: string;
  readonly secret: string;
  /** Every API request seen: method, path (with query), status answered (0 until answered, and for 'reset'). */
  readonly requests: readonly { method: string; path: string; status: number }[];
  /** Every webhook event the server produced, in order (delivered or not). */
  readonly events: readonly WebhookEvent[];
  /** Every API call answers this HTTP status (with OpenVidu's error JSON) until called with undefined; 'reset' destroys the socket instead. */
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
  /** What openvidu-browser does when a participant uses a token: the pending connection becomes active (activeAt = at ?? Date.now()), participantJoined is produced. Answers the connection id. Throws if the token is unknown. */
  join(token: string, options?: { at?: number; platform?: string }): string;
  /** A participant leaves (reason one of OpenVidu's participantLeft reasons, default 'disconnect'): participantLeft produced with startTime and duration; when the last active participant leaves, the session closes as OpenVidu 2 does (recording stopped, sessionDestroyed with reason lastParticipantLeft). */
  leave(connectionId: string, options?: { at?: number; reason?: string }): void;
  /** A recording that stopped becomes ready (produces recordingStatusChanged 'ready'; GET /recordings/{id} then gives status ready and a url). */
  finishRecording(recordingId: string): void;
  /** Live sessions as the server holds them (the JSON GET /sessions/{id}?pendingConnections=true answers). */
  session(sessionId: string): unknown | undefined;
  close(): Promise<void>;
}

export async function startOpenViduStandIn(options: {
  secret: string;
  recordingEnabled?: boolean /* default true; false => recording endpoints answer 501 */;
}): Promise<OpenViduStandIn> {
  const standIn = new StandIn(options.secret, options.recordingEnabled ?? true);
  await standIn.listen();
  return standIn;
}

// ---------------------------------------------------------------------------------------
// Vocabulary

/** REST: "Share the same base path: /openvidu/api/". */
const API = '/openvidu/api';
const VERSION = '2.32.0';

const MEDIA_MODES = ['ROUTED', 'RELAYED'] as const; // REST#post-session
const RECORDING_MODES = ['ALWAYS', 'MANUAL'] as const; // REST#post-session
const VIDEO_CODECS = ['MEDIA_SERVER_PREFERRED', 'NONE', 'VP8', 'VP9', 'H264'] as const; // REST#the-session-object
const CONNECTION_TYPES = ['WEBRTC', 'IPCAM'] as const; // REST#post-connection
const ROLES = ['SUBSCRIBER', 'PUBLISHER', 'MODERATOR'] as const; // REST#post-connection
const OUTPUT_MODES = ['COMPOSED', 'COMPOSED_QUICK_START', 'INDIVIDUAL'] as const; // REST#post-recording-start
const LAYOUTS = [
  'BEST_FIT',
  'PICTURE_IN_PICTURE',
  'VERTICAL_PRESENTATION',
  'HORIZONTAL_PRESENTATION',
  'CUSTOM',
] as const; // REST#post-recording-start
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
] as const;

/** REST#post-session: customSessionId allows [0-9], [a-zA-Z], dashes and underscores. */
const CUSTOM_SESSION_ID = /^[a-zA-Z0-9_-]+$/;
/** REST#post-recording-start: "WIDTHxHEIGHT", both between 100 and 1999. */
const RESOLUTION = /^([1-9]\d{2}|1\d{3})x([1-9]\d{2}|1\d{3})$/;
/** REST#post-recording-start: shmSize minimum (422 below it). */
const MIN_SHM_SIZE = 134_217_728;
/** What join() reports as the participant's platform when the test gives none (REST#the-connection-object). */
const DEFAULT_PLATFORM = 'Chrome 126.0.0.0 on Linux 64-bit';
/** How long one webhook POST may take before it counts as failed. */
const WEBHOOK_TIMEOUT_MS = 5_000;

type OutputMode = (typeof OUTPUT_MODES)[number];
type Body = Record<string, unknown>;

interface RecordingSettings {
  readonly name: string;
  readonly outputMode: OutputMode;
  readonly hasAudio: boolean;
  readonly hasVideo: boolean;
  readonly recordingLayout: string;
  readonly customLayout: string;
  readonly resolution: string;
  readonly frameRate: number;
  readonly shmSize: number;
  readonly ignoreFailedStreams: boolean;
}

/** REST#post-recording-start: the documented default of every property. */
const RECORDING_DEFAULTS: RecordingSettings = {
  name: '',
  outputMode: 'COMPOSED',
  hasAudio: true,
  hasVideo: true,
  recordingLayout: 'BEST_FIT',
  customLayout: '',
  resolution: '1280x720',
  frameRate: 25,
  shmSize: 536_870_912,
  ignoreFailedStreams: false,
};

interface SessionSettings {
  readonly customSessionId: string;
  readonly mediaMode: string;
  readonly recordingMode: string;
  readonly forcedVideoCodec: string;
  readonly allowTranscoding: boolean;
  readonly defaultRecordingProperties: RecordingSettings;
}

interface IceServer {
  readonly url: string;
  readonly username?: string;
  readonly credential?: string;
}

interface ConnectionSettings {
  readonly type: (typeof CONNECTION_TYPES)[number];
  readonly data: string;
  readonly record: boolean;
  readonly role: string | null;
  readonly kurentoOptions: Body | null;
  readonly customIceServers: readonly IceServer[];
  readonly rtspUri: string | null;
  readonly adaptativeBitrate: boolean | null;
  readonly onlyPlayWithSubscribers: boolean | null;
  readonly networkCache: number | null;
}

interface SessionState {
  readonly id: string;
  /** WEBHOOK: every event of a session carries it; OpenVidu builds it as `<id>_<createdAt>`. */
  readonly uniqueSessionId: string;
  readonly createdAt: number;
  readonly settings: SessionSettings;
  readonly connections: Map<string, ConnectionState>;
  /** The recording in progress, if any (REST#the-session-object `recording`). */
  recordingId: string | undefined;
}

interface ConnectionState {
  readonly id: string;
  readonly sessionId: string;
  readonly createdAt: number;
  readonly token: string | null;
  readonly settings: ConnectionSettings;
  status: 'pending' | 'active';
  activeAt: number | null;
  location: string | null;
  ip: string | null;
  platform: string | null;
  clientData: string | null;
  publishers: Body[] | null;
  subscribers: Body[] | null;
}

interface RecordingState {
  readonly id: string;
  readonly sessionId: string;
  readonly uniqueSessionId: string;
  readonly createdAt: number;
  readonly settings: RecordingSettings;
  status: 'starting' | 'started' | 'stopped' | 'ready' | 'failed';
  size: number;
  duration: number;
  url: string | null;
  stoppedAt: number | undefined;
  reason: string | undefined;
}

interface Reply {
  readonly status: number;
  readonly body?: unknown;
}

interface ApiRequest {
  readonly params: readonly string[];
  readonly query: URLSearchParams;
  readonly body: Body | undefined;
}

interface Route {
  readonly method: string;
  readonly pattern: RegExp;
  /** Whether the operation reads a JSON body, and whether it must be there. */
  readonly body?: 'optional' | 'required';
  readonly handle: (request: ApiRequest) => Reply;
}

interface WebhookTarget {
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly autoDeliver: boolean;
}

/** A failed operation: its HTTP status, answered with OpenVidu's error JSON. */
class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

// ---------------------------------------------------------------------------------------
// The server

class StandIn implements OpenViduStandIn {
  readonly requests: { method: string; path: string; status: number }[] = [];
  readonly events: WebhookEvent[] = [];
  private baseUrl = '';
  private readonly sessions = new Map<string, SessionState>();
  private readonly recordings = new Map<string, RecordingState>();
  private failure: number | 'reset' | undefined;
  private delayMs = 0;
  private webhook: WebhookTarget | undefined;
  /** Automatic deliveries, chained so they leave one at a time and in order. */
  private deliveries: Promise<void> = Promise.resolve();
  private readonly webhookAgent = new Agent({ keepAlive: false });
  private readonly inFlight = new Set<ClientRequest>();
  private readonly server = createServer((req, res) => {
    this.onRequest(req, res).catch((error: unknown) => {
      if (!res.headersSent) send(res, errorReply(500, messageOf(error), req.url ?? ''));
    });
  });

  constructor(
    readonly secret: string,
    private readonly recordingEnabled: boolean,
  ) {}

  get url(): string {
    return this.baseUrl;
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => resolve());
    });
    const { port } = this.server.address() as AddressInfo;
    this.baseUrl = `http://127.0.0.1:${port}`;
  }

  // --- Test controls ---------------------------------------------------------------------

  failWith(status: number | 'reset' | undefined): void {
    this.failure = status;
  }

  delay(ms: number): void {
    this.delayMs = Math.max(0, ms);
  }

  forgetSessions(): void {
    // Recordings outlive their session, as recorded files do.
    this.sessions.clear();
  }

  configureWebhook(target: WebhookTarget | undefined): void {
    this.webhook = target && { ...target, headers: { ...target.headers } };
  }

  deliver(event: WebhookEvent): Promise<number> {
    if (!this.webhook) return Promise.reject(new Error('no webhook target configured'));
    return this.post(this.webhook, event);
  }

  join(token: string, options: { at?: number; platform?: string } = {}): string {
    const connection = this.findPendingConnection(token);
    const session = connection && this.sessions.get(connection.sessionId);
    if (!connection || !session) throw new Error(`no pending connection has token ${token}`);
    // REST#the-connection-object: once its token is used the connection is `active`, its
    // token cannot be used again, and the user's properties are populated.
    this.activate(connection, {
      at: options.at ?? Date.now(),
      platform: options.platform ?? DEFAULT_PLATFORM,
      ip: '127.0.0.1', // the participant's IP as OpenVidu sees it: this machine
      clientData: '',
    });
    this.emit(participantJoined(session, connection));
    return connection.id;
  }

  leave(connectionId: string, options: { at?: number; reason?: string } = {}): void {
    const reason = options.reason ?? 'disconnect';
    if (!(LEFT_REASONS as readonly string[]).includes(reason)) {
      throw new Error(`${reason} is not a participantLeft reason`);
    }
    const session = this.sessionWithActive(connectionId);
    if (!session) throw new Error(`no active connection ${connectionId}`);
    this.removeParticipant(session, connectionId, reason, options.at ?? Date.now());
  }

  finishRecording(recordingId: string): void {
    const recording = this.recordings.get(recordingId);
    if (recording?.status !== 'stopped' || recording.stoppedAt === undefined) {
      throw new Error(`recording ${recordingId} is not stopped`);
    }
    // REST#the-recording-object, `ready`: duration, size and url are now defined; the url
    // is <base>/openvidu/recordings/<RECORDING_ID>/<RECORDING_NAME>.<EXTENSION>.
    recording.status = 'ready';
    recording.duration = (recording.stoppedAt - recording.createdAt) / 1000;
    recording.size = Math.max(1, Math.round(recording.duration * 250_000)); // no file: a plausible size
    recording.url = `${this.url}/openvidu/recordings/${recording.id}/${recording.settings.name}.${extension(recording.settings)}`;
    this.emit(recordingStatusChanged(recording, Date.now()));
  }

  session(sessionId: string): unknown | undefined {
    const session = this.sessions.get(sessionId);
    return session && sessionJson(session, true);
  }

  async close(): Promise<void> {
    for (const req of this.inFlight) req.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await this.deliveries;
    this.webhookAgent.destroy();
  }

  // --- HTTP ------------------------------------------------------------------------------

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const target = new URL(req.url ?? '/', 'http://stand-in');
    if (!target.pathname.startsWith(`${API}/`)) {
      send(res, errorReply(404, 'No static resource', target.pathname));
      return;
    }
    const entry = { method: req.method ?? '', path: req.url ?? '', status: 0 };
    this.requests.push(entry);
    const raw = await readBody(req);
    await sleepAtLeast(this.delayMs);
    if (this.failure === 'reset') {
      req.socket.destroy();
      return;
    }
    const reply =
      this.failure === undefined
        ? this.answer(req, target, raw)
        : errorReply(this.failure, 'The stand-in was told to fail (failWith)', target.pathname);
    entry.status = reply.status;
    send(res, reply);
  }

  private answer(req: IncomingMessage, target: URL, raw: string): Reply {
    // REST: "All REST API operations return HTTP status 401 if the Authorization header
    // is wrong or not provided."
    if (!this.authorized(req.headers.authorization)) {
      return errorReply(401, 'Unauthorized', target.pathname);
    }
    const path = target.pathname.slice(API.length);
    const matching = this.routes.filter((route) => route.pattern.test(path));
    const route = matching.find((candidate) => candidate.method === req.method);
    if (!route) {
      const status = matching.length > 0 ? 405 : 404;
      return errorReply(status, `No operation ${req.method} ${target.pathname}`, target.pathname);
    }
    try {
      const params = (route.pattern.exec(path) ?? []).slice(1).map(decodeSegment);
      const body = route.body ? parseBody(raw, route.body) : undefined;
      return route.handle({ params, query: target.searchParams, body });
    } catch (error) {
      if (error instanceof ApiError)
        return errorReply(error.status, error.message, target.pathname);
      throw error;
    }
  }

  /** REST: Basic Auth with user OPENVIDUAPP and the secret as password. */
  private authorized(header: string | undefined): boolean {
    const [scheme, encoded] = (header ?? '').split(' ');
    if (scheme?.toLowerCase() !== 'basic' || !encoded) return false;
    return Buffer.from(encoded, 'base64').toString('utf8') === `OPENVIDUAPP:${this.secret}`;
  }

  /** The operations of REST#index this stand-in answers. */
  private readonly routes: readonly Route[] = [
    route('POST', '/sessions', (r) => this.initializeSession(r), 'optional'),
    route('GET', '/sessions', (r) => this.listSessions(r)),
    route('GET', '/sessions/:id', (r) => this.getSession(r)),
    route('DELETE', '/sessions/:id', (r) => this.closeSessionRequest(r)),
    route('POST', '/sessions/:id/connection', (r) => this.initializeConnection(r), 'optional'),
    route('GET', '/sessions/:id/connection', (r) => this.listConnections(r)),
    route('GET', '/sessions/:id/connection/:id', (r) => this.getConnection(r)),
    route('DELETE', '/sessions/:id/connection/:id', (r) => this.closeConnection(r)),
    route('POST', '/tokens', (r) => this.generateToken(r), 'required'),
    route('POST', '/recordings/start', (r) => this.startRecording(r), 'required'),
    route('POST', '/recordings/stop/:id', (r) => this.stopRecording(r)),
    route('GET', '/recordings', () => this.listRecordings()),
    route('GET', '/recordings/:id', (r) => this.getRecording(r)),
    route('DELETE', '/recordings/:id', (r) => this.deleteRecording(r)),
    route('GET', '/config', () => this.config()),
  ];

  // --- Sessions --------------------------------------------------------------------------

  /** REST#post-session: 200 with the Session object, 400 on a body problem, 409 when the custom id exists. */
  private initializeSession({ body }: ApiRequest): Reply {
    const settings = readSessionSettings(body ?? {});
    if (settings.customSessionId && this.sessions.has(settings.customSessionId)) {
      throw new ApiError(409, `Session ${settings.customSessionId} already exists`);
    }
    // REST#post-session: "If this parameter is an empty string or not sent at all, OpenVidu
    // Server will generate a random sessionId for you."
    const id = settings.customSessionId || randomId('ses_');
    const createdAt = Date.now();
    const session: SessionState = {
      id,
      uniqueSessionId: `${id}_${createdAt}`,
      createdAt,
      settings,
      connections: new Map(),
      recordingId: undefined,
    };
    this.sessions.set(id, session);
    // WEBHOOK#sessioncreated: "triggered at the end of a successful call to the REST API
    // method to initialize a session".
    this.emit({ ...sessionEventBase('sessionCreated', session, createdAt) });
    return { status: 200, body: sessionJson(session, false) };
  }

  /** REST#get-all-sessions: {numberOfElements, content}. */
  private listSessions({ query }: ApiRequest): Reply {
    const content = [...this.sessions.values()].map((s) => sessionJson(s, withPending(query)));
    return { status: 200, body: { numberOfElements: content.length, content } };
  }

  /** REST#get-session: 200, or 404 for no such session. */
  private getSession({ params, query }: ApiRequest): Reply {
    return {
      status: 200,
      body: sessionJson(this.requireSession(params[0], 404), withPending(query)),
    };
  }

  /** REST#delete-session: 204, or 404 for no such session. */
  private closeSessionRequest({ params }: ApiRequest): Reply {
    this.closeSession(this.requireSession(params[0], 404), 'sessionClosedByServer', Date.now());
    return { status: 204 };
  }

  /**
   * REST#delete-session: "all of its Connections, Streams and Recordings will be closed";
   * WEBHOOK#participantleft, #recordingstatuschanged and #sessiondestroyed carry the reason.
   */
  private closeSession(session: SessionState, reason: string, at: number): void {
    for (const connection of [...session.connections.values()]) {
      session.connections.delete(connection.id);
      if (connection.status === 'active')
        this.emit(participantLeft(session, connection, reason, at));
    }
    this.stopSessionRecording(session, reason, at);
    this.sessions.delete(session.id);
    this.emit({
      ...sessionEventBase('sessionDestroyed', session, at),
      ...endFields(session.createdAt, at, reason),
    });
  }

  private requireSession(sessionId: string | undefined, status: number): SessionState {
    const session = sessionId === undefined ? undefined : this.sessions.get(sessionId);
    if (!session) throw new ApiError(status, `Session ${sessionId} not found`);
    return session;
  }

  // --- Connections -----------------------------------------------------------------------

  /** REST#post-connection: 200 with the Connection object, 400 on a body problem, 404 for no such session. */
  private initializeConnection({ params, body }: ApiRequest): Reply {
    const session = this.requireSession(params[0], 404);
    const settings = readConnectionSettings(body ?? {});
    const connection =
      settings.type === 'IPCAM'
        ? this.addIpCamera(session, settings)
        : this.addPendingConnection(session, settings);
    return { status: 200, body: connectionJson(connection) };
  }

  /** REST#get-all-connections: pending ones included unless pendingConnections=false; 404 for no such session. */
  private listConnections({ params, query }: ApiRequest): Reply {
    const session = this.requireSession(params[0], 404);
    const pending = query.get('pendingConnections') !== 'false';
    const content = connectionsOf(session, pending).map(connectionJson);
    return { status: 200, body: { numberOfElements: content.length, content } };
  }

  /** REST#get-connection: 200, 400 for no such session, 404 for no such connection. */
  private getConnection({ params }: ApiRequest): Reply {
    const session = this.requireSession(params[0], 400);
    const connection = session.connections.get(params[1] ?? '');
    if (!connection) throw new ApiError(404, `Connection ${params[1]} not found`);
    return { status: 200, body: connectionJson(connection) };
  }

  /**
   * REST#delete-connection: 204, 400 for no such session, 404 for no such connection. An
   * active participant is evicted (reason forceDisconnectByServer); a pending connection's
   * token is simply invalidated.
   */
  private closeConnection({ params }: ApiRequest): Reply {
    const session = this.requireSession(params[0], 400);
    const connection = session.connections.get(params[1] ?? '');
    if (!connection) throw new ApiError(404, `Connection ${params[1]} not found`);
    if (connection.status === 'active') {
      this.removeParticipant(session, connection.id, 'forceDisconnectByServer', Date.now());
    } else {
      session.connections.delete(connection.id);
    }
    return { status: 204 };
  }

  /** REST#post-token (deprecated): a WEBRTC connection, answered as a Token object; 400, or 404 for no such session. */
  private generateToken({ body = {} }: ApiRequest): Reply {
    const sessionId = read(body, 'session', isString);
    if (sessionId === undefined) throw new ApiError(400, '"session" parameter is mandatory');
    const session = this.requireSession(sessionId, 404);
    // Its body has no `record` and no `type`: a token is always for a WEBRTC connection.
    const { record: _ignored, ...rest } = body;
    const settings = readConnectionSettings({ ...rest, type: 'WEBRTC' });
    const connection = this.addPendingConnection(session, settings);
    return {
      status: 200,
      body: {
        id: connection.token,
        token: connection.token,
        connectionId: connection.id,
        createdAt: connection.createdAt,
        session: session.id,
        role: settings.role,
        data: settings.data,
        record: settings.record,
        ...(settings.kurentoOptions ? { kurentoOptions: settings.kurentoOptions } : {}),
      },
    };
  }

  /** REST#the-connection-object: a new WEBRTC connection is `pending` until its token is used. */
  private addPendingConnection(
    session: SessionState,
    settings: ConnectionSettings,
  ): ConnectionState {
    const connection = newConnection(session.id, settings, this.tokenFor(session.id));
    session.connections.set(connection.id, connection);
    return connection;
  }

  /**
   * REST#post-connection: an IPCAM connection joins at once ("every participant will
   * immediately receive the proper events"); its platform is IPCAM, its token null.
   */
  private addIpCamera(session: SessionState, settings: ConnectionSettings): ConnectionState {
    const connection = newConnection(session.id, settings, null);
    session.connections.set(connection.id, connection);
    this.activate(connection, {
      at: connection.createdAt,
      platform: 'IPCAM',
      ip: new URL(settings.rtspUri ?? '').hostname,
      clientData: null,
    });
    connection.publishers = [ipCameraStream(connection)];
    this.emit(participantJoined(session, connection));
    return connection;
  }

  /** REST#the-connection-object: a token is `ws(s)://<host>?sessionId=<id>&token=tok_<random>`. */
  private tokenFor(sessionId: string): string {
    const { host, protocol } = new URL(this.url);
    const scheme = protocol === 'https:' ? 'wss' : 'ws';
    return `${scheme}://${host}?sessionId=${sessionId}&token=${randomId('tok_', 16, false)}`;
  }

  private activate(
    connection: ConnectionState,
    user: { at: number; platform: string; ip: string; clientData: string | null },
  ): void {
    connection.status = 'active';
    connection.activeAt = user.at;
    connection.location = 'unknown'; // WEBHOOK#participantjoined: geolocation is Pro, else "unknown"
    connection.ip = user.ip;
    connection.platform = user.platform;
    connection.clientData = user.clientData;
    connection.publishers = [];
    connection.subscribers = [];
  }

  /**
   * WEBHOOK#participantleft; and OpenVidu 2 closes a session when its last participant
   * leaves (WEBHOOK#sessiondestroyed reason lastParticipantLeft, its recording stopped
   * with the same reason, WEBHOOK#recordingstatuschanged).
   */
  private removeParticipant(
    session: SessionState,
    connectionId: string,
    reason: string,
    at: number,
  ): void {
    const connection = session.connections.get(connectionId);
    if (!connection) return;
    session.connections.delete(connectionId);
    this.emit(participantLeft(session, connection, reason, at));
    if (reason !== 'sessionClosedByServer' && connectionsOf(session, false).length === 0) {
      this.closeSession(session, 'lastParticipantLeft', at);
    }
  }

  private findPendingConnection(token: string): ConnectionState | undefined {
    for (const session of this.sessions.values()) {
      for (const connection of session.connections.values()) {
        if (connection.token === token && connection.status === 'pending') return connection;
      }
    }
    return undefined;
  }

  private sessionWithActive(connectionId: string): SessionState | undefined {
    for (const session of this.sessions.values()) {
      if (session.connections.get(connectionId)?.status === 'active') return session;
    }
    return undefined;
  }

  // --- Recordings ------------------------------------------------------------------------

  /** REST#post-recording-start (and every recording operation): 501 when recording is disabled. */
  private requireRecordingModule(): void {
    if (!this.recordingEnabled) {
      throw new ApiError(501, 'OpenVidu Server recording module is disabled');
    }
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
    const session = this.requireSession(sessionId, 404);
    if (session.settings.mediaMode !== 'ROUTED' || session.recordingId !== undefined) {
      throw new ApiError(409, `Session ${sessionId} is not ROUTED or is already being recorded`);
    }
    if (connectionsOf(session, false).length === 0) {
      throw new ApiError(406, `Session ${sessionId} has no connected participants`);
    }
    const settings = readRecordingSettings(body, session.settings.defaultRecordingProperties, 422);
    const id = this.nextRecordingId(session.id);
    const recording: RecordingState = {
      id,
      sessionId: session.id,
      uniqueSessionId: session.uniqueSessionId,
      createdAt: Date.now(),
      // REST#the-recording-object: "If no name parameter is provided, will be equal to id".
      settings: { ...settings, name: settings.name || id },
      status: 'started',
      size: 0,
      duration: 0,
      url: null,
      stoppedAt: undefined,
      reason: undefined,
    };
    this.recordings.set(id, recording);
    session.recordingId = id;
    this.emit(recordingStatusChanged(recording, recording.createdAt));
    return { status: 200, body: recordingJson(recording) };
  }

  /** REST#the-recording-object `id`: based on the session id; `<id>~1`, `<id>~2`... once taken. */
  private nextRecordingId(sessionId: string): string {
    let id = sessionId;
    for (let n = 1; this.recordings.has(id); n++) id = `${sessionId}~${n}`;
    return id;
  }

  /** REST#post-recording-stop: 200 with the Recording (status `stopped`), 404 unknown (or not recording), 406 starting. */
  private stopRecording({ params }: ApiRequest): Reply {
    this.requireRecordingModule();
    const recording = this.recordings.get(params[0] ?? '');
    if (recording?.status === 'starting') {
      throw new ApiError(406, `Recording ${recording.id} is still starting`);
    }
    if (recording?.status !== 'started')
      throw new ApiError(404, `Recording ${params[0]} not found`);
    this.stopRecordingNow(recording, 'recordingStoppedByServer', Date.now());
    return { status: 200, body: recordingJson(recording) };
  }

  private stopSessionRecording(session: SessionState, reason: string, at: number): void {
    const recording = session.recordingId && this.recordings.get(session.recordingId);
    if (recording && recording.status === 'started') this.stopRecordingNow(recording, reason, at);
  }

  /**
   * REST#the-recording-object `stopped`: files are being processed; size, duration and
   * url wait for `ready` (finishRecording). WEBHOOK#recordingstatuschanged with the reason.
   */
  private stopRecordingNow(recording: RecordingState, reason: string, at: number): void {
    recording.status = 'stopped';
    recording.stoppedAt = at;
    recording.reason = reason;
    const session = this.sessions.get(recording.sessionId);
    if (session?.recordingId === recording.id) session.recordingId = undefined;
    this.emit(recordingStatusChanged(recording, at));
  }

  /** REST#get-recording: 200, 404, 501. */
  private getRecording({ params }: ApiRequest): Reply {
    this.requireRecordingModule();
    return { status: 200, body: recordingJson(this.requireRecording(params[0])) };
  }

  /** REST#get-all-recordings: {count, items}; 501. */
  private listRecordings(): Reply {
    this.requireRecordingModule();
    const items = [...this.recordings.values()].map(recordingJson);
    return { status: 200, body: { count: items.length, items } };
  }

  /** REST#delete-recording: 204, 404, 409 while `started` ("Stop it before deletion"), 501. */
  private deleteRecording({ params }: ApiRequest): Reply {
    this.requireRecordingModule();
    const recording = this.requireRecording(params[0]);
    if (recording.status === 'started' || recording.status === 'starting') {
      throw new ApiError(409, `Recording ${recording.id} is in progress`);
    }
    this.recordings.delete(recording.id);
    return { status: 204 };
  }

  private requireRecording(recordingId: string | undefined): RecordingState {
    const recording = this.recordings.get(recordingId ?? '');
    if (!recording) throw new ApiError(404, `Recording ${recordingId} not found`);
    return recording;
  }

  // --- Configuration ---------------------------------------------------------------------

  /** REST#get-config: a small part of the configuration OpenVidu CE answers. */
  private config(): Reply {
    const { hostname, port } = new URL(this.url);
    return {
      status: 200,
      body: {
        VERSION,
        DOMAIN_OR_PUBLIC_IP: hostname,
        HTTPS_PORT: Number(port),
        OPENVIDU_PUBLICURL: this.url,
        OPENVIDU_CDR: false,
        OPENVIDU_RECORDING: this.recordingEnabled,
        OPENVIDU_RECORDING_VERSION: VERSION,
        OPENVIDU_RECORDING_PUBLIC_ACCESS: false,
        OPENVIDU_WEBHOOK: this.webhook !== undefined,
        OPENVIDU_WEBHOOK_ENDPOINT: this.webhook?.url ?? '',
        OPENVIDU_WEBHOOK_HEADERS: Object.entries(this.webhook?.headers ?? {}).map(
          ([name, value]) => `${name}: ${value}`,
        ),
        OPENVIDU_WEBHOOK_EVENTS: [
          'sessionCreated',
          'sessionDestroyed',
          'participantJoined',
          'participantLeft',
          'recordingStatusChanged',
        ],
      },
    };
  }

  // --- Webhooks --------------------------------------------------------------------------

  /** Records the event; with autoDeliver, queues it for the target (WEBHOOK#enable-webhook-service). */
  private emit(event: WebhookEvent): void {
    this.events.push(event);
    const target = this.webhook;
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
        { method: 'POST', headers, agent: this.webhookAgent, timeout: WEBHOOK_TIMEOUT_MS },
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

// ---------------------------------------------------------------------------------------
// Reading request bodies (REST: "400 Problem with some body parameter")

type Check<T> = (value: unknown) => value is T;

const isString: Check<string> = (value): value is string => typeof value === 'string';
const isBoolean: Check<boolean> = (value): value is boolean => typeof value === 'boolean';
const isInteger: Check<number> = (value): value is number => Number.isInteger(value);
const isObject: Check<Body> = (value): value is Body =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
const isArray: Check<unknown[]> = (value): value is unknown[] => Array.isArray(value);
const isStringArray: Check<string[]> = (value): value is string[] =>
  Array.isArray(value) && value.every(isString);
/** REST#post-session, #post-recording-start (PRO): a Media Node selector, accepted and unused. */
const isMediaNode: Check<unknown> = (value): value is unknown => isObject(value) || isString(value);

function oneOf<T extends string>(values: readonly T[]): Check<T> {
  return (value): value is T =>
    typeof value === 'string' && (values as readonly string[]).includes(value);
}

/** One body field. As OpenVidu reads its JSON map, absent and null both mean "not given". */
function read<T>(body: Body, key: string, check: Check<T>): T | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (!check(value)) throw new ApiError(400, `Type error in parameter '${key}'`);
  return value;
}

/** REST: operations take a JSON object; one that does not parse is a 400. */
function parseBody(raw: string, need: 'optional' | 'required'): Body | undefined {
  if (raw.trim() === '') {
    if (need === 'required') throw new ApiError(400, 'Required request body is missing');
    return undefined;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new ApiError(400, 'JSON parse error');
  }
  if (!isObject(parsed)) throw new ApiError(400, 'The body must be a JSON object');
  return parsed;
}

/** REST#post-session: the body's properties, with their documented defaults. */
function readSessionSettings(body: Body): SessionSettings {
  const customSessionId = read(body, 'customSessionId', isString) ?? '';
  if (customSessionId !== '' && !CUSTOM_SESSION_ID.test(customSessionId)) {
    throw new ApiError(
      400,
      `Parameter 'customSessionId' is wrong. Must be an alphanumeric string [a-zA-Z0-9_-]`,
    );
  }
  const defaults = read(body, 'defaultRecordingProperties', isObject);
  read(body, 'mediaNode', isMediaNode);
  return {
    customSessionId,
    mediaMode: read(body, 'mediaMode', oneOf(MEDIA_MODES)) ?? 'ROUTED',
    recordingMode: read(body, 'recordingMode', oneOf(RECORDING_MODES)) ?? 'MANUAL',
    forcedVideoCodec:
      read(body, 'forcedVideoCodec', oneOf(VIDEO_CODECS)) ?? 'MEDIA_SERVER_PREFERRED',
    allowTranscoding: read(body, 'allowTranscoding', isBoolean) ?? false,
    // Same structure as POST /recordings/start; here every problem is a 400 (REST#post-session).
    defaultRecordingProperties: defaults
      ? readRecordingSettings(defaults, RECORDING_DEFAULTS, 400)
      : RECORDING_DEFAULTS,
  };
}

/**
 * REST#post-recording-start: the properties over the session's defaults; a wrong type is
 * a 400, values out of range are `rangeStatus` (422 when starting a recording).
 */
function readRecordingSettings(
  body: Body,
  base: RecordingSettings,
  rangeStatus: number,
): RecordingSettings {
  read(body, 'mediaNode', isMediaNode);
  const settings: RecordingSettings = {
    name: read(body, 'name', isString) ?? base.name,
    outputMode: read(body, 'outputMode', oneOf(OUTPUT_MODES)) ?? base.outputMode,
    hasAudio: read(body, 'hasAudio', isBoolean) ?? base.hasAudio,
    hasVideo: read(body, 'hasVideo', isBoolean) ?? base.hasVideo,
    recordingLayout: read(body, 'recordingLayout', oneOf(LAYOUTS)) ?? base.recordingLayout,
    customLayout: read(body, 'customLayout', isString) ?? base.customLayout,
    resolution: read(body, 'resolution', isString) ?? base.resolution,
    frameRate: read(body, 'frameRate', isInteger) ?? base.frameRate,
    shmSize: read(body, 'shmSize', isInteger) ?? base.shmSize,
    ignoreFailedStreams: read(body, 'ignoreFailedStreams', isBoolean) ?? base.ignoreFailedStreams,
  };
  checkRecordingRanges(settings, rangeStatus);
  return settings;
}

/** REST#post-recording-start, HTTP 422: the documented limits. */
function checkRecordingRanges(settings: RecordingSettings, status: number): void {
  if (!settings.hasAudio && !settings.hasVideo) {
    throw new ApiError(status, 'Cannot record with both "hasAudio" and "hasVideo" set to false');
  }
  // resolution, frameRate and shmSize "only apply if outputMode is COMPOSED or
  // COMPOSED_QUICK_START and hasVideo to true".
  if (!composedWithVideo(settings)) return;
  if (!RESOLUTION.test(settings.resolution)) {
    throw new ApiError(status, "Wrong 'resolution': width and height must be from 100 to 1999");
  }
  if (settings.frameRate < 1 || settings.frameRate > 120) {
    throw new ApiError(status, "Wrong 'frameRate': from 1 to 120");
  }
  if (settings.shmSize < MIN_SHM_SIZE) {
    throw new ApiError(status, `Wrong 'shmSize': at least ${MIN_SHM_SIZE}`);
  }
}

/** REST#post-connection: the body's properties, with their documented defaults. */
function readConnectionSettings(body: Body): ConnectionSettings {
  const type = read(body, 'type', oneOf(CONNECTION_TYPES)) ?? 'WEBRTC';
  const common = {
    type,
    data: read(body, 'data', isString) ?? '',
    record: read(body, 'record', isBoolean) ?? true,
  };
  const role = read(body, 'role', oneOf(ROLES));
  const kurentoOptions = readKurentoOptions(body);
  const customIceServers = readIceServers(body);
  const rtspUri = read(body, 'rtspUri', isString);
  const adaptativeBitrate = read(body, 'adaptativeBitrate', isBoolean);
  const onlyPlayWithSubscribers = read(body, 'onlyPlayWithSubscribers', isBoolean);
  const networkCache = read(body, 'networkCache', isInteger);
  if (type === 'WEBRTC') {
    // role, kurentoOptions and customIceServers are "only for type WEBRTC".
    return {
      ...common,
      role: role ?? 'PUBLISHER',
      kurentoOptions,
      customIceServers,
      rtspUri: null,
      adaptativeBitrate: null,
      onlyPlayWithSubscribers: null,
      networkCache: null,
    };
  }
  // rtspUri is "mandatory String if property type is IPCAM"; the rest have defaults.
  if (rtspUri === undefined || !URL.canParse(rtspUri)) {
    throw new ApiError(400, '"rtspUri" parameter is not a valid rtsp uri');
  }
  return {
    ...common,
    role: null,
    kurentoOptions: null,
    customIceServers: [],
    rtspUri,
    adaptativeBitrate: adaptativeBitrate ?? true,
    onlyPlayWithSubscribers: onlyPlayWithSubscribers ?? true,
    networkCache: networkCache ?? 2000,
  };
}

/** REST#post-connection `kurentoOptions`: four bandwidths (numbers) and allowedFilters (strings). */
function readKurentoOptions(body: Body): Body | null {
  const options = read(body, 'kurentoOptions', isObject);
  if (!options) return null;
  const result: Body = {};
  for (const key of [
    'videoMaxRecvBandwidth',
    'videoMinRecvBandwidth',
    'videoMaxSendBandwidth',
    'videoMinSendBandwidth',
  ]) {
    const value = read(options, key, isInteger);
    if (value !== undefined) result[key] = value;
  }
  const allowedFilters = read(options, 'allowedFilters', isStringArray);
  if (allowedFilters) result.allowedFilters = allowedFilters;
  return result;
}

/** REST#post-connection `customIceServers`: url mandatory; username and credential mandatory with TURN. */
function readIceServers(body: Body): IceServer[] {
  const servers = read(body, 'customIceServers', isArray) ?? [];
  return servers.map((server) => {
    if (!isObject(server)) throw new ApiError(400, "Type error in parameter 'customIceServers'");
    const url = read(server, 'url', isString);
    const username = read(server, 'username', isString);
    const credential = read(server, 'credential', isString);
    if (url === undefined) throw new ApiError(400, '"url" is mandatory in customIceServers');
    if (/^turns?:/.test(url) && (username === undefined || credential === undefined)) {
      throw new ApiError(400, 'A TURN server needs "username" and "credential"');
    }
    return {
      url,
      ...(username === undefined ? {} : { username }),
      ...(credential === undefined ? {} : { credential }),
    };
  });
}

// ---------------------------------------------------------------------------------------
// JSON answers and events

/** REST#get-session: `pendingConnections=true` adds the pending connections. */
function withPending(query: URLSearchParams): boolean {
  return query.get('pendingConnections') === 'true';
}

/** Active connections first, then (when asked) pending ones. */
function connectionsOf(session: SessionState, withPendingConnections: boolean): ConnectionState[] {
  const all = [...session.connections.values()];
  const active = all.filter((c) => c.status === 'active');
  return withPendingConnections
    ? [...active, ...all.filter((c) => c.status === 'pending')]
    : active;
}

/** REST#the-session-object, with the deprecated `sessionId` (same as `id`) the client still reads. */
function sessionJson(session: SessionState, withPendingConnections: boolean): Body {
  const { settings } = session;
  const content = connectionsOf(session, withPendingConnections).map(connectionJson);
  return {
    id: session.id,
    object: 'session',
    sessionId: session.id,
    createdAt: session.createdAt,
    mediaMode: settings.mediaMode,
    recordingMode: settings.recordingMode,
    defaultRecordingProperties: recordingSettingsJson(settings.defaultRecordingProperties),
    // "Only defined if the session was initialized passing a customSessionId field".
    ...(settings.customSessionId ? { customSessionId: settings.customSessionId } : {}),
    connections: { numberOfElements: content.length, content },
    recording: session.recordingId !== undefined,
    broadcasting: false,
    forcedVideoCodec: settings.forcedVideoCodec,
    allowTranscoding: settings.allowTranscoding,
  };
}

/** REST#post-recording-start: the properties, each only where it applies. */
function recordingSettingsJson(settings: RecordingSettings): Body {
  return {
    name: settings.name,
    hasAudio: settings.hasAudio,
    hasVideo: settings.hasVideo,
    outputMode: settings.outputMode,
    ...composedFields(settings),
    ...(composedWithVideo(settings) ? { shmSize: settings.shmSize } : {}),
    ...(settings.outputMode === 'INDIVIDUAL'
      ? { ignoreFailedStreams: settings.ignoreFailedStreams }
      : {}),
  };
}

/** REST#the-recording-object: resolution, frameRate, recordingLayout (and customLayout if CUSTOM) only for COMPOSED with video. */
function composedFields(settings: RecordingSettings): Body {
  if (!composedWithVideo(settings)) return {};
  return {
    recordingLayout: settings.recordingLayout,
    resolution: settings.resolution,
    frameRate: settings.frameRate,
    ...(settings.recordingLayout === 'CUSTOM' ? { customLayout: settings.customLayout } : {}),
  };
}

function composedWithVideo(settings: RecordingSettings): boolean {
  return settings.outputMode !== 'INDIVIDUAL' && settings.hasVideo;
}

/** REST#the-recording-object url: the extension of the file OpenVidu writes. */
function extension(settings: RecordingSettings): string {
  if (settings.outputMode === 'INDIVIDUAL') return 'zip';
  return settings.hasVideo ? 'mp4' : 'webm';
}

function newConnection(
  sessionId: string,
  settings: ConnectionSettings,
  token: string | null,
): ConnectionState {
  return {
    id: randomId('con_'),
    sessionId,
    createdAt: Date.now(),
    token,
    settings,
    status: 'pending',
    activeAt: null,
    location: null,
    ip: null,
    platform: null,
    clientData: null,
    publishers: null,
    subscribers: null,
  };
}

/**
 * REST#the-connection-object, with the deprecated `connectionId` the client still reads.
 * A pending connection has null activeAt, location, ip, platform, clientData, publishers
 * and subscribers.
 */
function connectionJson(connection: ConnectionState): Body {
  const { settings } = connection;
  return {
    id: connection.id,
    object: 'connection',
    type: settings.type,
    status: connection.status,
    connectionId: connection.id,
    sessionId: connection.sessionId,
    createdAt: connection.createdAt,
    activeAt: connection.activeAt,
    location: connection.location,
    ip: connection.ip,
    platform: connection.platform,
    token: connection.token,
    serverData: settings.data,
    clientData: connection.clientData,
    record: settings.record,
    role: settings.role,
    kurentoOptions: settings.kurentoOptions,
    rtspUri: settings.rtspUri,
    adaptativeBitrate: settings.adaptativeBitrate,
    onlyPlayWithSubscribers: settings.onlyPlayWithSubscribers,
    networkCache: settings.networkCache,
    publishers: connection.publishers,
    subscribers: connection.subscribers,
    customIceServers: settings.customIceServers,
  };
}

/** REST#the-connection-object `publishers`: the one stream an IP camera publishes. */
function ipCameraStream(connection: ConnectionState): Body {
  return {
    createdAt: connection.createdAt,
    streamId: `str_IPC_${randomId('', 4, false)}_${connection.id}`,
    mediaOptions: {
      hasAudio: true,
      audioActive: true,
      hasVideo: true,
      videoActive: true,
      typeOfVideo: 'IPCAM',
      frameRate: null,
      videoDimensions: null,
      filter: {},
    },
  };
}

/** REST#the-recording-object. */
function recordingJson(recording: RecordingState): Body {
  const { settings } = recording;
  return {
    id: recording.id,
    object: 'recording',
    name: settings.name,
    outputMode: settings.outputMode,
    hasAudio: settings.hasAudio,
    hasVideo: settings.hasVideo,
    ...composedFields(settings),
    sessionId: recording.sessionId,
    createdAt: recording.createdAt,
    size: recording.size,
    duration: recording.duration,
    url: recording.url,
    status: recording.status,
  };
}

/** WEBHOOK#format-of-the-webhook-events: `event`, `timestamp`, and the session's ids. */
function sessionEventBase(event: string, session: SessionState, timestamp: number) {
  return { event, sessionId: session.id, uniqueSessionId: session.uniqueSessionId, timestamp };
}

/** WEBHOOK#sessiondestroyed, #participantleft: startTime, duration in whole seconds, reason. */
function endFields(startTime: number, timestamp: number, reason: string) {
  return { startTime, duration: Math.trunc((timestamp - startTime) / 1000), reason };
}

/** WEBHOOK#participantjoined: the participant's fields; `participantId` is the pre-2.16 name of `connectionId`. */
function participantFields(connection: ConnectionState) {
  return {
    participantId: connection.id,
    connectionId: connection.id,
    location: connection.location,
    ip: connection.ip,
    platform: connection.platform,
    clientData: connection.clientData,
    serverData: connection.settings.data,
  };
}

/** WEBHOOK#participantjoined: triggered when the connection becomes active, at activeAt. */
function participantJoined(session: SessionState, connection: ConnectionState): WebhookEvent {
  const at = connection.activeAt ?? Date.now();
  return {
    ...sessionEventBase('participantJoined', session, at),
    ...participantFields(connection),
  };
}

/** WEBHOOK#participantleft: startTime is when the participant joined. */
function participantLeft(
  session: SessionState,
  connection: ConnectionState,
  reason: string,
  at: number,
): WebhookEvent {
  return {
    ...sessionEventBase('participantLeft', session, at),
    ...endFields(connection.activeAt ?? at, at, reason),
    ...participantFields(connection),
  };
}

/**
 * WEBHOOK#recordingstatuschanged: the documented fields (no url); resolution and
 * recordingLayout only for COMPOSED with video; reason only once stopped.
 */
function recordingStatusChanged(recording: RecordingState, at: number): WebhookEvent {
  const { settings } = recording;
  return {
    event: 'recordingStatusChanged',
    sessionId: recording.sessionId,
    uniqueSessionId: recording.uniqueSessionId,
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

// ---------------------------------------------------------------------------------------
// Helpers

const ALPHANUMERIC = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/**
 * OpenVidu's identifiers: a prefix (ses_, con_, tok_), then by default one capital letter
 * and nine alphanumerics (e.g. ses_YnDaGYNcd7, con_Xnxg19tonh in REST#the-session-object).
 */
function randomId(prefix: string, length = 10, capitalFirst = true): string {
  let id = prefix;
  for (let i = 0; i < length; i++) {
    id += ALPHANUMERIC[randomInt(i === 0 && capitalFirst ? 26 : ALPHANUMERIC.length)];
  }
  return id;
}

/** A route from a path template under /openvidu/api, `:name` standing for one segment. */
function route(
  method: string,
  template: string,
  handle: Route['handle'],
  body?: Route['body'],
): Route {
  const pattern = new RegExp(`^${template.replace(/:\w+/g, '([^/]+)')}$`);
  return { method, pattern, handle, ...(body ? { body } : {}) };
}

/** The error JSON OpenVidu answers: {timestamp, status, error, message, path}. */
function errorReply(status: number, message: string, path: string): Reply {
  return {
    status,
    body: { timestamp: Date.now(), status, error: STATUS_CODES[status] ?? 'Error', message, path },
  };
}

function send(res: ServerResponse, reply: Reply): void {
  if (reply.body === undefined) {
    res.writeHead(reply.status).end();
    return;
  }
  const json = JSON.stringify(reply.body);
  res
    .writeHead(reply.status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(json),
    })
    .end(json);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new ApiError(400, `Malformed path segment ${segment}`);
  }
}

/** Waits at least `ms` (timers may fire a little early; this never answers sooner). */
async function sleepAtLeast(ms: number): Promise<void> {
  const until = performance.now() + ms;
  for (let left = ms; left > 0; left = until - performance.now()) {
    await new Promise((resolve) => setTimeout(resolve, Math.ceil(left)));
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
