import { createHash } from 'node:crypto';

/**
 * The provider session (Jitsi room, OpenVidu `customSessionId`) of a consultation:
 * derived from its id, so every call that needs it can compute it again; lower-case
 * (prosody lower-cases room names) and within OpenVidu's `[a-zA-Z0-9_-]`; and opaque:
 * it reveals neither the consultation id nor anything about the patient.
 */
export function providerSessionName(consultationId: string): string {
  const digest = createHash('sha256').update(`video-service:${consultationId}`).digest('hex');
  return `vc-${digest.slice(0, 32)}`;
}
