import type { ProviderName } from '../domain/consultation.js';
import { DomainError } from '../domain/errors.js';
import type { ProviderHealth, VideoProvider } from '../domain/ports.js';

export const PROVIDER_NAMES: readonly ProviderName[] = ['jitsi', 'openvidu'];

export interface ProviderStatusView {
  readonly name: ProviderName;
  readonly configured: boolean;
  readonly healthy: boolean;
  readonly isDefault: boolean;
  readonly detail: string;
}

/** The configured providers, and which one new consultations get when none is asked for. */
export interface ProviderRegistry {
  readonly defaultProvider: ProviderName;
  /** The provider, or FAILED_PRECONDITION when it is not configured. */
  get(name: ProviderName): VideoProvider;
  /** Resolves a request's preference (undefined: the default). */
  choose(preference: ProviderName | undefined): ProviderName;
  statuses(): Promise<ProviderStatusView[]>;
}

export function createProviderRegistry(
  providers: readonly VideoProvider[],
  defaultProvider: ProviderName,
): ProviderRegistry {
  const byName = new Map(providers.map((p) => [p.name, p]));
  if (!byName.has(defaultProvider)) {
    throw new Error(`the default provider ${defaultProvider} is not configured`);
  }
  const get = (name: ProviderName): VideoProvider => {
    const provider = byName.get(name);
    if (!provider) {
      throw new DomainError(
        'failed_precondition',
        `provider ${name} is not configured`,
        'provider',
      );
    }
    return provider;
  };
  return {
    defaultProvider,
    get,
    choose: (preference) => get(preference ?? defaultProvider).name,
    async statuses() {
      return Promise.all(
        PROVIDER_NAMES.map(async (name): Promise<ProviderStatusView> => {
          const provider = byName.get(name);
          if (!provider) {
            return {
              name,
              configured: false,
              healthy: false,
              isDefault: false,
              detail: 'not configured',
            };
          }
          const health = await probe(provider);
          return { name, configured: true, isDefault: name === defaultProvider, ...health };
        }),
      );
    },
  };
}

async function probe(provider: VideoProvider): Promise<ProviderHealth> {
  try {
    return await provider.health();
  } catch (error) {
    return { healthy: false, detail: error instanceof Error ? error.message : String(error) };
  }
}
