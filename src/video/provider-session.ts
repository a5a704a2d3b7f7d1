import type { Logger } from 'pino';
import type { ProviderName } from '../domain/consultation.js';
import type { ProviderRegistry } from '../domain/ports.js';
import type { ConsultationEntity } from '../persistence/entities.js';

/**
 * The consultation's provider session, created when it has none: on the chosen provider
 * or, when that one is failing, on the next. The session id is derived from the
 * consultation id, so creating it twice (after a lost race) is harmless; a live session
 * stays where it is. Called with no transaction open.
 */
export async function ensureProviderSession(
  providers: ProviderRegistry,
  consultation: ConsultationEntity,
): Promise<{ provider: ProviderName; sessionId: string }> {
  const provider = consultation.provider ?? providers.defaultProvider;
  if (consultation.providerSessionId) {
    return { provider, sessionId: consultation.providerSessionId };
  }
  return providers.ensureSessionWithFailover(consultation.id, provider);
}

/**
 * Closes the provider session of a consultation that has ended, after its commit. The
 * consultation is over in the database either way, and providers close idle sessions on
 * their own, so a failure is logged, not returned.
 */
export async function closeProviderSession(
  deps: { readonly providers: ProviderRegistry; readonly logger: Logger },
  consultation: {
    readonly id: string;
    readonly provider?: ConsultationEntity['provider'];
    readonly providerSessionId?: string | null | undefined;
  },
): Promise<void> {
  const { provider, providerSessionId } = consultation;
  if (!provider || !providerSessionId) return;
  try {
    await deps.providers.get(provider).endSession(providerSessionId);
  } catch (error) {
    deps.logger.warn(
      { err: error, consultationId: consultation.id, provider },
      'could not close the provider session',
    );
  }
}
