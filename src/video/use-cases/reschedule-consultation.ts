import { authorize } from '../../domain/access.js';
import { assertValidSlot, FINAL_STATUSES } from '../../domain/consultation.js';
import { failedPrecondition, notFound } from '../../domain/errors.js';
import { ConsultationSchema } from '../../persistence/entities.js';
import type { Caller } from '../audit.js';
import { loadConsultation } from '../consultation-access.js';
import { audited, type UseCaseDeps } from '../use-case.js';
import { type ConsultationView, toView } from '../views.js';

export interface RescheduleConsultationRequest {
  readonly appointmentId: string;
  readonly scheduledStart: Date;
  readonly scheduledEnd: Date;
}

/** Moves a consultation's window (appointment.rescheduled; no RPC). Idempotent. */
export async function rescheduleConsultation(
  deps: UseCaseDeps,
  caller: Caller,
  request: RescheduleConsultationRequest,
): Promise<ConsultationView> {
  const { principal } = caller;
  const action = 'consultation.reschedule';
  return audited(deps, caller, action, undefined, async (em, audit) => {
    authorize(principal, action);
    assertValidSlot({ start: request.scheduledStart, end: request.scheduledEnd });
    const found = await em.findOne(
      ConsultationSchema,
      { clinicId: principal.clinicId, appointmentId: request.appointmentId },
      { fields: ['id'] },
    );
    if (!found) throw notFound('consultation');
    audit.resourceId = found.id;
    const c = await loadConsultation(em, principal, found.id, action);
    if (FINAL_STATUSES.has(c.status) || c.status === 'in_progress') {
      throw failedPrecondition(`cannot move a consultation that is ${c.status.replace('_', ' ')}`);
    }
    const same =
      c.scheduledStart.getTime() === request.scheduledStart.getTime() &&
      c.scheduledEnd.getTime() === request.scheduledEnd.getTime();
    if (!same) {
      c.scheduledStart = request.scheduledStart;
      c.scheduledEnd = request.scheduledEnd;
      c.updatedAt = deps.clock.now();
      await em.flush();
    }
    return toView(c);
  });
}
