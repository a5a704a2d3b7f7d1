/**
 * Sessions and their connections as OpenVidu keeps them, and the Session and Connection
 * objects the REST API answers (REST#the-session-object, REST#the-connection-object).
 * Only WEBRTC connections made with `type`, `data`, `record` and `role` are modelled:
 * that is all the service asks for.
 */
import { randomInt } from 'node:crypto';
import {
  ApiError,
  type Body,
  isBoolean,
  isObject,
  isString,
  notModelled,
  oneOf,
  read,
} from './http.js';
import {
  RECORDING_DEFAULTS,
  type RecordingSettings,
  readRecordingSettings,
  recordingSettingsJson,
} from './recordings.js';

const MEDIA_MODES = ['ROUTED', 'RELAYED'] as const; // REST#post-session
const RECORDING_MODES = ['ALWAYS', 'MANUAL'] as const; // REST#post-session
const VIDEO_CODECS = ['MEDIA_SERVER_PREFERRED', 'NONE', 'VP8', 'VP9', 'H264'] as const; // REST#the-session-object
const ROLES = ['SUBSCRIBER', 'PUBLISHER', 'MODERATOR'] as const; // REST#post-connection
/** REST#post-session: customSessionId allows [0-9], [a-zA-Z], dashes and underscores. */
const CUSTOM_SESSION_ID = /^[a-zA-Z0-9_-]+$/;

export interface SessionSettings {
  readonly customSessionId: string;
  readonly mediaMode: string;
  readonly recordingMode: string;
  readonly forcedVideoCodec: string;
  readonly allowTranscoding: boolean;
  readonly defaultRecordingProperties: RecordingSettings;
}

export interface SessionState {
  readonly id: string;
  readonly createdAt: number;
  readonly settings: SessionSettings;
  readonly connections: Map<string, ConnectionState>;
  /** The recording in progress, if any (REST#the-session-object `recording`). */
  recordingId: string | undefined;
}

export interface ConnectionState {
  readonly id: string;
  readonly sessionId: string;
  readonly createdAt: number;
  readonly token: string;
  readonly data: string;
  readonly record: boolean;
  readonly role: string;
  status: 'pending' | 'active';
  activeAt: number | null;
  location: string | null;
  ip: string | null;
  platform: string | null;
  clientData: string | null;
}

/** REST#post-session: the body's properties, with their documented defaults. */
export function readSessionSettings(body: Body): SessionSettings {
  const customSessionId = read(body, 'customSessionId', isString) ?? '';
  if (customSessionId !== '' && !CUSTOM_SESSION_ID.test(customSessionId)) {
    throw new ApiError(400, "Parameter 'customSessionId' is wrong. Must be an alphanumeric string");
  }
  const defaults = read(body, 'defaultRecordingProperties', isObject);
  return {
    customSessionId,
    mediaMode: read(body, 'mediaMode', oneOf(MEDIA_MODES)) ?? 'ROUTED',
    recordingMode: read(body, 'recordingMode', oneOf(RECORDING_MODES)) ?? 'MANUAL',
    forcedVideoCodec:
      read(body, 'forcedVideoCodec', oneOf(VIDEO_CODECS)) ?? 'MEDIA_SERVER_PREFERRED',
    allowTranscoding: read(body, 'allowTranscoding', isBoolean) ?? false,
    // Same structure as POST /recordings/start; here every problem is a 400.
    defaultRecordingProperties: defaults
      ? readRecordingSettings(defaults, RECORDING_DEFAULTS, 400)
      : RECORDING_DEFAULTS,
  };
}

export function newSession(id: string, settings: SessionSettings): SessionState {
  return { id, createdAt: Date.now(), settings, connections: new Map(), recordingId: undefined };
}

/**
 * REST#post-connection: a WEBRTC connection, `pending` until its token is used; the token
 * is `ws(s)://<host>?sessionId=<id>&token=tok_<random>` (REST#the-connection-object).
 */
export function newConnection(session: SessionState, body: Body, baseUrl: string): ConnectionState {
  if (read(body, 'type', oneOf(['WEBRTC', 'IPCAM'])) === 'IPCAM') notModelled('IPCAM connections');
  if (body.kurentoOptions != null) notModelled('kurentoOptions');
  const iceServers = body.customIceServers;
  if (iceServers != null && !(Array.isArray(iceServers) && iceServers.length === 0)) {
    notModelled('customIceServers');
  }
  const { host, protocol } = new URL(baseUrl);
  const scheme = protocol === 'https:' ? 'wss' : 'ws';
  return {
    id: randomId('con_'),
    sessionId: session.id,
    createdAt: Date.now(),
    token: `${scheme}://${host}?sessionId=${session.id}&token=${randomId('tok_', 16, false)}`,
    data: read(body, 'data', isString) ?? '',
    record: read(body, 'record', isBoolean) ?? true,
    role: read(body, 'role', oneOf(ROLES)) ?? 'PUBLISHER',
    status: 'pending',
    activeAt: null,
    location: null,
    ip: null,
    platform: null,
    clientData: null,
  };
}

/**
 * REST#the-connection-object: once its token is used the connection is `active`, the
 * token cannot be used again, and the user's properties are populated.
 */
export function activate(
  connection: ConnectionState,
  user: { at: number; platform: string; ip: string },
): void {
  connection.status = 'active';
  connection.activeAt = user.at;
  connection.location = 'unknown'; // WEBHOOK#participantjoined: geolocation is PRO, else "unknown"
  connection.ip = user.ip;
  connection.platform = user.platform;
  connection.clientData = '';
}

/** Active connections first, then (when asked) pending ones. */
export function connectionsOf(session: SessionState, withPending: boolean): ConnectionState[] {
  const all = [...session.connections.values()];
  const active = all.filter((c) => c.status === 'active');
  return withPending ? [...active, ...all.filter((c) => c.status === 'pending')] : active;
}

/** REST#the-session-object, with the deprecated `sessionId` (same as `id`) the client still reads. */
export function sessionJson(session: SessionState, withPending: boolean): Body {
  const { settings } = session;
  const content = connectionsOf(session, withPending).map(connectionJson);
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

/**
 * REST#the-connection-object for type WEBRTC, with the deprecated `connectionId` the
 * client still reads: the IPCAM-only properties are null, a pending connection has null
 * activeAt, location, ip, platform, clientData, publishers and subscribers.
 */
export function connectionJson(connection: ConnectionState): Body {
  const active = connection.status === 'active';
  return {
    id: connection.id,
    object: 'connection',
    type: 'WEBRTC',
    status: connection.status,
    connectionId: connection.id,
    sessionId: connection.sessionId,
    createdAt: connection.createdAt,
    activeAt: connection.activeAt,
    location: connection.location,
    ip: connection.ip,
    platform: connection.platform,
    token: connection.token,
    serverData: connection.data,
    clientData: connection.clientData,
    record: connection.record,
    role: connection.role,
    kurentoOptions: null,
    rtspUri: null,
    adaptativeBitrate: null,
    onlyPlayWithSubscribers: null,
    networkCache: null,
    publishers: active ? [] : null,
    subscribers: active ? [] : null,
    customIceServers: [],
  };
}

const ALPHANUMERIC = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/**
 * OpenVidu's identifiers: a prefix (ses_, con_, tok_), then by default one capital letter
 * and nine alphanumerics (e.g. ses_YnDaGYNcd7, con_Xnxg19tonh in REST#the-session-object).
 */
export function randomId(prefix: string, length = 10, capitalFirst = true): string {
  let id = prefix;
  for (let i = 0; i < length; i++) {
    id += ALPHANUMERIC[randomInt(i === 0 && capitalFirst ? 26 : ALPHANUMERIC.length)];
  }
  return id;
}
