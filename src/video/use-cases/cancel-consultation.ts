import { authorize } from '../../domain/access.js';
import { notFound } from '../../domain/errors.js';
import { ConsultationSchema } from '../../persistence/entities.js';
import type { Caller } from '../audit.js';
import { closeConsultation } from '../close-consultation.js';
import { loadConsultation } from '../consultation-access.js';
import { closeProviderSession } from '../provider-session.js';
import { audited, type UseCaseDeps } from '../use-case.js';
import { type ConsultationView, toView } from '../views.js';

/** By the consultation's id, or by its appointment's (appointment.cancelled). */
export type CancelConsultationRequest = { consultationId: string } | { appointmentId: string };

/**
 * CancelConsultation: before or during the call. Idempotent; a live consultation that is
 * cancelled has ended too, and its provider session is closed after the commit.
 */
export async function cancelConsultation(
  deps: UseCaseDeps,
  caller: Caller,
  request: CancelConsultationRequest,
): Promise<ConsultationView> {
  const { principal } = caller;
  const action = 'consultation.cancel';
  const knownId = 'consultationId' in request ? request.consultationId : undefined;
  const { consultation, wasLive } = await audited(
    deps,
    caller,
    action,
    knownId,
    async (em, audit) => {
      authorize(principal, action);
      const id =
        knownId ??
        (
          await em.findOne(
            ConsultationSchema,
            {
              clinicId: principal.clinicId,
              appointmentId: 'appointmentId' in request ? request.appointmentId : '',
            },
            { fields: ['id'] },
          )
        )?.id;
      if (!id) throw notFound('consultation');
      audit.resourceId = id;
      const c = await loadConsultation(em, principal, id, action);
      const t = await closeConsultation(em, c, 'cancelled', deps.clock.now());
      return { consultation: toView(c), wasLive: t.changed && t.from === 'in_progress' };
    },
  );
  if (wasLive) await closeProviderSession(deps, consultation);
  return consultation;
}
