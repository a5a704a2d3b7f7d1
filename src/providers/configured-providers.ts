import type { Config } from '../config.js';
import type { Clock, ProviderRegistry } from '../domain/ports.js';
import { createJaasProvider, createJitsiProvider } from './jitsi-provider.js';
import { createOpenViduProvider } from './openvidu-provider.js';
import { createProviderRegistry } from './provider-registry.js';

/** The providers the configuration names, each behind its breaker, in one registry. */
export function createConfiguredProviders(
  config: Config['providers'],
  clock: Clock,
): ProviderRegistry {
  const { jitsi } = config;
  const openVidu = config.openVidu && createOpenViduProvider(config.openVidu);
  return createProviderRegistry(
    [
      jitsi.mode === 'jaas'
        ? createJaasProvider({
            domain: jitsi.domain,
            appId: jitsi.appId,
            keyId: jitsi.jaasKeyId ?? '',
            privateKey: jitsi.jaasPrivateKey ?? '',
            clock,
          })
        : createJitsiProvider({ ...jitsi, clock }),
      ...(openVidu ? [openVidu] : []),
    ],
    {
      defaultProvider: config.default,
      byClinic: config.byClinic,
      failuresToOpen: config.failuresToOpen,
      halfOpenAfterMs: config.halfOpenAfterMs,
    },
  );
}
