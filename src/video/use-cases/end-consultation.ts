import type { Caller } from '../audit.js';
import { closeConsultation } from '../close-consultation.js';
import { loadConsultation } from '../consultation-access.js';
import { closeProviderSession } from '../provider-session.js';
import { audited, type UseCaseDeps } from '../use-case.js';
import { type ConsultationView, toView } from '../views.js';

/**
 * EndConsultation: the doctor ends the call (reason `completed`); its provider session is
 * closed after the commit. Ending it again changes nothing.
 */
export async function endConsultation(
  deps: UseCaseDeps,
  caller: Caller,
  request: { readonly consultationId: string },
): Promise<ConsultationView> {
  const { consultationId } = request;
  const action = 'consultation.end';
  const { consultation, changed } = await audited(
    deps,
    caller,
    action,
    consultationId,
    async (em) => {
      const c = await loadConsultation(em, caller.principal, consultationId, action);
      const t = await closeConsultation(em, c, 'completed', deps.clock.now());
      return { consultation: toView(c), changed: t.changed };
    },
  );
  if (changed) {
    deps.logger.info({ consultationId }, 'consultation ended');
    await closeProviderSession(deps, consultation);
  }
  return consultation;
}
