import { authorize } from '../../domain/access.js';
import type { ProviderStatusView } from '../../domain/ports.js';
import type { Caller } from '../audit.js';
import type { UseCaseDeps } from '../use-case.js';

/** GetProviderStatus: each provider's health and circuit, for the clinic's operators. */
export async function getProviderStatus(
  deps: UseCaseDeps,
  caller: Caller,
): Promise<ProviderStatusView[]> {
  authorize(caller.principal, 'provider.status');
  return deps.providers.statuses();
}
