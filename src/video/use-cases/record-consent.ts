import { FINAL_STATUSES } from '../../domain/consultation.js';
import { failedPrecondition } from '../../domain/errors.js';
import type { Caller } from '../audit.js';
import { callerRole, loadConsultation, participant } from '../consultation-access.js';
import { audited, type UseCaseDeps } from '../use-case.js';
import { type ConsultationView, toView } from '../views.js';

/** RecordConsent: a participant consents to recording. Idempotent; audited like every change. */
export async function recordConsent(
  deps: UseCaseDeps,
  caller: Caller,
  request: { readonly consultationId: string },
): Promise<ConsultationView> {
  const action = 'consultation.record_consent';
  return audited(deps, caller, action, request.consultationId, async (em) => {
    const c = await loadConsultation(em, caller.principal, request.consultationId, action);
    const role = callerRole(caller.principal, c);
    if (FINAL_STATUSES.has(c.status)) {
      throw failedPrecondition(`the consultation is ${c.status.replace('_', ' ')}`);
    }
    const me = participant(c, role);
    if (!me.recordingConsentAt) {
      const now = deps.clock.now();
      me.recordingConsentAt = now;
      c.updatedAt = now;
      await em.flush();
    }
    return toView(c);
  });
}
