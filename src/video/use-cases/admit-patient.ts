import { FINAL_STATUSES } from '../../domain/consultation.js';
import { failedPrecondition } from '../../domain/errors.js';
import type { Caller } from '../audit.js';
import { loadConsultation, participant } from '../consultation-access.js';
import { audited, type UseCaseDeps } from '../use-case.js';
import { type ConsultationView, toView } from '../views.js';

/** AdmitPatient: the doctor lets a checked-in patient in. Idempotent. */
export async function admitPatient(
  deps: UseCaseDeps,
  caller: Caller,
  request: { readonly consultationId: string },
): Promise<ConsultationView> {
  const action = 'consultation.admit';
  return audited(deps, caller, action, request.consultationId, async (em) => {
    const c = await loadConsultation(em, caller.principal, request.consultationId, action);
    if (FINAL_STATUSES.has(c.status)) {
      throw failedPrecondition(
        `cannot admit to a consultation that is ${c.status.replace('_', ' ')}`,
      );
    }
    const patient = participant(c, 'patient');
    if (!patient.checkedInAt) throw failedPrecondition('the patient has not checked in');
    if (!patient.admittedAt) {
      const now = deps.clock.now();
      patient.admittedAt = now;
      c.updatedAt = now; // the admission is a change of the consultation: bump its version
      await em.flush();
    }
    return toView(c);
  });
}
