import { createPrivateKey, createSecretKey } from 'node:crypto';
import jwt from 'jsonwebtoken';
import {
  type Clock,
  systemClock,
  type TokenRequest,
  type TokenRole,
  type VideoProvider,
} from '../domain/ports.js';
import { providerSessionName } from './session-name.js';

/**
 * Jitsi Meet with token authentication (prosody `mod_auth_token`, "JWT" in the Jitsi
 * handbook): the service signs a JWT per participant; the room exists as soon as someone
 * joins it. Claims, as prosody checks them: `iss` the app id, `aud` the configured
 * audience, `sub` the Jitsi domain, `room` the room name, `exp` and `nbf`,
 * `context.user` for the participant's display data, and `context.features` (see
 * `SWITCHED_OFF_FEATURES`). Prosody allows no clock skew, so `nbf` gets a margin into the
 * past.
 */
export interface JitsiOptions {
  readonly domain: string;
  readonly appId: string;
  readonly appSecret: string;
  readonly audience: string;
  readonly clock?: Clock;
}

/**
 * Jitsi as a Service (8x8), https://developer.8x8.com/jaas/docs/api-keys-jwt: RS256 with
 * the API key's `kid` ("<tenant>/<key id>"), `iss` "chat", `aud` "jitsi", `sub` the tenant
 * (the app id, vpaas-magic-cookie-…), string-valued `context.user.moderator` and
 * `context.features`, and meeting rooms under the tenant: https://8x8.vc/<tenant>/<room>.
 */
export interface JaasOptions {
  readonly domain: string;
  readonly appId: string;
  /** The key id as the JaaS console lists it. */
  readonly keyId: string;
  /** The API key's private key, PEM. */
  readonly privateKey: string;
  readonly clock?: Clock;
}

/**
 * A role label, never the person's name: the room is not a place for PHI. Jitsi tokens
 * cannot make someone receive-only; an observer joins as a participant without moderation.
 */
const DISPLAY_NAMES: Record<TokenRole, string> = {
  doctor: 'Doctor',
  patient: 'Patient',
  observer: 'Observer',
};

/**
 * The meeting features every token switches off, for every role, self-hosted and JaaS
 * alike, so that nobody in the room records, streams, transcribes or dials anyone in:
 * recording goes only through the service's consent-gated StartRecording.
 *
 * - `recording` and `livestreaming`: Jibri's file recording and its live stream;
 * - `transcription`: the transcriber (Jigasi and a speech service) writing the
 *   conversation down;
 * - `outbound-call` and `sip-outbound-call`: dialling a phone or SIP endpoint into the
 *   room, a listener the consultation does not know of.
 *
 * The names are jitsi-meet's `MEET_FEATURES`. Values are strings, as JaaS documents them
 * ("true"/"false"); prosody (`is_feature_allowed`) allows a feature only when its value is
 * "true" or true, and jitsi-meet's web app only when `String(value) === 'true'`, so "false"
 * refuses on both. A token that carries `context.features` is held to them even for a
 * moderator (only a token without features falls back to "moderators may"), which is why
 * the doctor, a moderator, gets them too. Enforced by prosody's `filter_iq_jibri`
 * (recording, live streaming) and `filter_iq_rayo` (dial-out, transcription) modules, and in
 * the web app with `enableFeaturesBasedOnToken: true` (README, "Video providers").
 */
const SWITCHED_OFF_FEATURES = {
  recording: 'false',
  livestreaming: 'false',
  transcription: 'false',
  'outbound-call': 'false',
  'sip-outbound-call': 'false',
} as const;

/** Seconds `nbf` lies in the past, so a participant's slightly late clock still joins. */
const NOT_BEFORE_MARGIN_SECONDS = 10;

/** A Jitsi room exists as soon as someone joins it: its name is all there is to create. */
async function ensureRoom(consultationId: string) {
  return { sessionId: providerSessionName(consultationId) };
}

/** The claims both modes share: the room, the validity, the participant and the features. */
function roomClaims(request: TokenRequest, clock: Clock) {
  const now = Math.floor(clock.now().getTime() / 1000);
  return {
    room: request.sessionId,
    nbf: now - NOT_BEFORE_MARGIN_SECONDS,
    exp: Math.floor(request.expiresAt.getTime() / 1000),
    context: {
      user: {
        id: request.participantId,
        name: DISPLAY_NAMES[request.role],
        moderator: String(request.role === 'doctor'),
      },
      features: { ...SWITCHED_OFF_FEATURES },
    },
  };
}

export function createJitsiProvider(options: JitsiOptions): VideoProvider {
  const clock = options.clock ?? systemClock;
  // Made once: jsonwebtoken would otherwise build a key object on every signature.
  const secret = createSecretKey(Buffer.from(options.appSecret));
  return {
    name: 'jitsi',

    ensureSession: ensureRoom,

    async issueToken(request) {
      const claims = {
        ...roomClaims(request, clock),
        // Prosody's token moderation reads the top-level flag; clients read context.user.
        moderator: request.role === 'doctor',
      };
      const token = jwt.sign(claims, secret, {
        algorithm: 'HS256',
        issuer: options.appId,
        audience: options.audience,
        subject: options.domain,
      });
      return {
        token,
        joinUrl: `https://${options.domain}/${request.sessionId}?jwt=${token}`,
        expiresAt: new Date(claims.exp * 1000),
      };
    },

    async endSession() {
      // Jitsi destroys a room when its last participant leaves; there is nothing to close.
    },

    async health() {
      return {
        healthy: true,
        detail: `tokens signed locally for ${options.domain}; the Jitsi server itself is not probed`,
      };
    },
  };
}

export function createJaasProvider(options: JaasOptions): VideoProvider {
  const clock = options.clock ?? systemClock;
  const privateKey = createPrivateKey(options.privateKey);
  const kid = options.keyId.includes('/') ? options.keyId : `${options.appId}/${options.keyId}`;
  return {
    name: 'jitsi',

    ensureSession: ensureRoom,

    async issueToken(request) {
      const claims = {
        aud: 'jitsi',
        iss: 'chat',
        sub: options.appId,
        ...roomClaims(request, clock),
      };
      const token = jwt.sign(claims, privateKey, { algorithm: 'RS256', keyid: kid });
      return {
        token,
        joinUrl: `https://${options.domain}/${options.appId}/${request.sessionId}?jwt=${token}`,
        expiresAt: new Date(claims.exp * 1000),
      };
    },

    async endSession() {
      // As self-hosted: the room goes away when its last participant leaves.
    },

    async health() {
      return {
        healthy: true,
        detail: `JaaS tokens signed locally for tenant ${options.appId}; 8x8 is not probed`,
      };
    },
  };
}
