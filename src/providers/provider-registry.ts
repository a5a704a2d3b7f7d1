import {
  BrokenCircuitError,
  type CircuitBreakerPolicy,
  CircuitState,
  ConsecutiveBreaker,
  circuitBreaker,
  handleWhen,
} from 'cockatiel';
import type { ProviderName } from '../domain/consultation.js';
import { DomainError } from '../domain/errors.js';
import type {
  ProviderHealth,
  ProviderRegistry,
  ProviderStatusView,
  VideoProvider,
} from '../domain/ports.js';
import { tracedProviderCall } from '../tracing.js';

export const PROVIDER_NAMES: readonly ProviderName[] = ['jitsi', 'openvidu'];

export interface RegistryOptions {
  readonly defaultProvider: ProviderName;
  /** Clinics that use another provider than the default. */
  readonly byClinic?: Readonly<Record<string, ProviderName>>;
  /** Consecutive failures that open a provider's circuit. */
  readonly failuresToOpen?: number;
  /** How long an open circuit waits before it lets one call try again. */
  readonly halfOpenAfterMs?: number;
}

/** Failures that say the provider is in trouble (not "your request is wrong"). */
const isProviderFailure = (error: unknown) =>
  !(error instanceof DomainError) || error.code === 'unavailable';

interface Guarded {
  readonly provider: VideoProvider;
  readonly breaker: CircuitBreakerPolicy;
  lastError: string;
  latencyMs: number;
}

export function createProviderRegistry(
  providers: readonly VideoProvider[],
  options: RegistryOptions,
): ProviderRegistry {
  const guarded = new Map<ProviderName, Guarded>();
  for (const provider of providers) guarded.set(provider.name, guard(provider, options));
  if (!guarded.has(options.defaultProvider)) {
    throw new Error(`the default provider ${options.defaultProvider} is not configured`);
  }
  const get = (name: ProviderName): Guarded => {
    const entry = guarded.get(name);
    if (!entry) {
      throw new DomainError(
        'failed_precondition',
        `provider ${name} is not configured`,
        'provider',
      );
    }
    return entry;
  };

  return {
    defaultProvider: options.defaultProvider,
    get: (name) => get(name).provider,
    choose(preference, clinicId) {
      if (preference) return get(preference).provider.name;
      const wanted = (clinicId && options.byClinic?.[clinicId]) || options.defaultProvider;
      get(wanted);
      return wanted;
    },
    async ensureSessionWithFailover(consultationId, preferred) {
      // In order of preference: an open circuit refuses at once, without calling its
      // provider, so the next one is tried; once its wait is over it lets one call through.
      const candidates = [preferred, ...[...guarded.keys()].filter((name) => name !== preferred)];
      let lastError: unknown;
      for (const name of candidates) {
        try {
          const { sessionId } = await get(name).provider.ensureSession(consultationId);
          return { provider: name, sessionId };
        } catch (error) {
          if (!isProviderFailure(error)) throw error;
          lastError = error;
        }
      }
      throw lastError instanceof DomainError
        ? lastError
        : new DomainError('unavailable', 'no video provider is available', undefined, {
            cause: lastError,
          });
    },
    async statuses() {
      return Promise.all(
        PROVIDER_NAMES.map(async (name): Promise<ProviderStatusView> => {
          const entry = guarded.get(name);
          if (!entry) {
            return {
              name,
              configured: false,
              healthy: false,
              isDefault: false,
              detail: 'not configured',
              circuitState: '',
              lastError: '',
              latencyMs: 0,
            };
          }
          const health = await probe(entry.provider);
          return {
            name,
            configured: true,
            isDefault: name === options.defaultProvider,
            ...health,
            circuitState: stateName(entry.breaker.state),
            lastError: entry.lastError,
            latencyMs: Math.round(entry.latencyMs),
          };
        }),
      );
    },
  };
}

/**
 * Wraps every call to a provider in its circuit breaker, and keeps what GetProviderStatus
 * reports: the last error and a moving average of the latency.
 */
function guard(provider: VideoProvider, options: RegistryOptions): Guarded {
  const breaker = circuitBreaker(handleWhen(isProviderFailure), {
    halfOpenAfter: options.halfOpenAfterMs ?? 10_000,
    breaker: new ConsecutiveBreaker(options.failuresToOpen ?? 3),
  });
  const entry: Guarded = { provider, breaker, lastError: '', latencyMs: 0 };
  /** Latency of the calls that reached the provider (an open circuit answers at once). */
  const timed =
    <T>(fn: () => Promise<T>) =>
    async (): Promise<T> => {
      const started = performance.now();
      try {
        return await fn();
      } finally {
        const ms = performance.now() - started;
        entry.latencyMs = entry.latencyMs === 0 ? ms : entry.latencyMs * 0.8 + ms * 0.2;
      }
    };
  const call = async <T>(operation: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await tracedProviderCall(provider.name, operation, () => breaker.execute(timed(fn)));
    } catch (error) {
      if (error instanceof BrokenCircuitError) {
        throw new DomainError('unavailable', `provider ${provider.name} is failing (circuit open)`);
      }
      if (isProviderFailure(error))
        entry.lastError = error instanceof Error ? error.message : String(error);
      throw error;
    }
  };
  const recording = provider.recording;
  const liveSessions = provider.liveSessions?.bind(provider);
  (entry as { provider: VideoProvider }).provider = {
    name: provider.name,
    ensureSession: (id) => call('ensureSession', () => provider.ensureSession(id)),
    issueToken: (request) => call('issueToken', () => provider.issueToken(request)),
    endSession: (id) => call('endSession', () => provider.endSession(id)),
    health: () => provider.health(),
    ...(liveSessions
      ? { liveSessions: (ids: readonly string[]) => call('liveSessions', () => liveSessions(ids)) }
      : {}),
    ...(recording
      ? {
          recording: {
            start: (id: string) => call('startRecording', () => recording.start(id)),
            stop: (sessionId: string, id: string) =>
              call('stopRecording', () => recording.stop(sessionId, id)),
            status: (id: string) => call('recordingStatus', () => recording.status(id)),
          },
        }
      : {}),
  };
  return entry;
}

function stateName(state: CircuitState): ProviderStatusView['circuitState'] {
  switch (state) {
    case CircuitState.Closed:
      return 'closed';
    case CircuitState.HalfOpen:
      return 'half_open';
    default:
      return 'open';
  }
}

async function probe(provider: VideoProvider): Promise<ProviderHealth> {
  try {
    return await provider.health();
  } catch (error) {
    return { healthy: false, detail: error instanceof Error ? error.message : String(error) };
  }
}
