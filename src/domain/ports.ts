import type { ParticipantRole, ProviderName } from './consultation.js';

/** The time, so that tests can move it. */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/** A participant's join credentials for one provider session. */
export interface JoinCredentials {
  readonly token: string;
  readonly joinUrl: string;
  readonly expiresAt: Date;
}

export interface ProviderHealth {
  readonly healthy: boolean;
  /** Why it is not healthy, or a short note on how it runs. */
  readonly detail: string;
}

export interface LiveConnection {
  readonly connectionId: string;
  /** The opaque participant id given with the token, if the connection carries it. */
  readonly participantId: string | undefined;
  readonly joinedAt: Date;
}

/**
 * What a token lets its holder do: the consultation's participants, or an observer who
 * only watches and listens (no consultation role issues observer tokens yet).
 */
export type TokenRole = ParticipantRole | 'observer';

export interface TokenRequest {
  /** The session id that `ensureSession` answered. */
  readonly sessionId: string;
  /** The participant's opaque id: never a name or anything that identifies a patient. */
  readonly participantId: string;
  readonly role: TokenRole;
  readonly expiresAt: Date;
}

/**
 * A video provider: where the call itself happens. Session ids are derived from the
 * consultation id, so every method is safe to repeat.
 */
export interface VideoProvider {
  readonly name: ProviderName;
  /** Creates the provider session for a consultation, or reuses the one that exists. */
  ensureSession(consultationId: string): Promise<{ sessionId: string }>;
  /** Issues a participant's join token; the doctor moderates. */
  issueToken(request: TokenRequest): Promise<JoinCredentials>;
  /** Closes the session; closing a closed or unknown session succeeds. */
  endSession(sessionId: string): Promise<void>;
  health(): Promise<ProviderHealth>;
  /**
   * Who is connected right now to each of these sessions, for the reconciler, in one
   * call; a session the provider does not know is absent from the answer. Absent for
   * providers with no such API (Jitsi).
   */
  liveSessions?(sessionIds: readonly string[]): Promise<ReadonlyMap<string, LiveConnection[]>>;
  /** Recording, where the provider supports it; absent when it cannot record. */
  readonly recording?: {
    start(sessionId: string): Promise<{ recordingId: string }>;
    /** Stopping a stopped or unknown recording succeeds. */
    stop(sessionId: string, recordingId: string): Promise<void>;
    /** The recording's state and, once it is ready, its URL; undefined when unknown. */
    status(recordingId: string): Promise<RecordingState | undefined>;
  };
}

export interface RecordingState {
  readonly status: 'starting' | 'started' | 'stopped' | 'ready' | 'failed';
  readonly url: string | undefined;
}

/** A provider's state, as GetProviderStatus answers it. */
export interface ProviderStatusView {
  readonly name: ProviderName;
  readonly configured: boolean;
  readonly healthy: boolean;
  readonly isDefault: boolean;
  readonly detail: string;
  readonly circuitState: 'closed' | 'open' | 'half_open' | '';
  readonly lastError: string;
  readonly latencyMs: number;
}

/**
 * The configured providers, each behind a circuit breaker. New consultations go to the
 * clinic's provider (or the default) unless its circuit is open, and then to another
 * one; a session that exists stays where it is, so calls for it go to its provider.
 */
export interface ProviderRegistry {
  readonly defaultProvider: ProviderName;
  /** The provider (behind its breaker), or FAILED_PRECONDITION when not configured. */
  get(name: ProviderName): VideoProvider;
  /** The provider for a new consultation: the preference, else the clinic's, else the default. */
  choose(preference: ProviderName | undefined, clinicId?: string): ProviderName;
  /**
   * Creates the session of a consultation that has none, on the chosen provider or, when
   * that one is failing, on the next configured one.
   */
  ensureSessionWithFailover(
    consultationId: string,
    preferred: ProviderName,
  ): Promise<{ provider: ProviderName; sessionId: string }>;
  statuses(): Promise<ProviderStatusView[]>;
}
