import { createHash } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { type Clock, systemClock, type VideoProvider } from '../domain/ports.js';

/**
 * Jitsi Meet with token authentication (prosody `mod_auth_token`, "JWT" in the Jitsi
 * handbook): the service signs a JWT per participant; the room exists as soon as someone
 * joins it. Claims, as prosody checks them: `iss` the app id, `aud` the configured
 * audience, `sub` the Jitsi domain, `room` the room name, `exp` and `nbf`, and
 * `context.user` for the participant's display data. Prosody allows no clock skew, so
 * `nbf` gets a margin into the past.
 */
export interface JitsiOptions {
  readonly domain: string;
  readonly appId: string;
  readonly appSecret: string;
  readonly audience: string;
  readonly clock?: Clock;
}

/** Seconds `nbf` lies in the past, so a participant's slightly late clock still joins. */
const NOT_BEFORE_MARGIN_SECONDS = 10;

/**
 * The room of a consultation: derived from its id, lower-case (prosody lower-cases room
 * names), and opaque: it reveals neither the consultation id nor anything about the patient.
 */
export function jitsiRoomName(consultationId: string): string {
  const digest = createHash('sha256').update(`video-service:${consultationId}`).digest('hex');
  return `vc-${digest.slice(0, 32)}`;
}

export function createJitsiProvider(options: JitsiOptions): VideoProvider {
  const clock = options.clock ?? systemClock;
  return {
    name: 'jitsi',

    async ensureSession(consultationId) {
      return { sessionId: jitsiRoomName(consultationId) };
    },

    async issueToken({ sessionId, participantId, role, expiresAt }) {
      const now = Math.floor(clock.now().getTime() / 1000);
      const moderator = role === 'doctor';
      const claims = {
        room: sessionId,
        nbf: now - NOT_BEFORE_MARGIN_SECONDS,
        exp: Math.floor(expiresAt.getTime() / 1000),
        // Prosody's token moderation reads the top-level flag; clients read context.user.
        moderator,
        context: {
          user: {
            id: participantId,
            // A role label, never the person's name: the room is not a place for PHI.
            name: moderator ? 'Doctor' : 'Patient',
            moderator: String(moderator),
          },
        },
      };
      const token = jwt.sign(claims, options.appSecret, {
        algorithm: 'HS256',
        issuer: options.appId,
        audience: options.audience,
        subject: options.domain,
      });
      return {
        token,
        joinUrl: `https://${options.domain}/${sessionId}?jwt=${token}`,
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
