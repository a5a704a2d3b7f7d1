import { randomUUID } from 'node:crypto';
import { authorize } from '../../domain/access.js';
import { assertValidSlot, type ProviderName } from '../../domain/consultation.js';
import { DomainError } from '../../domain/errors.js';
import { ConsultationSchema, ParticipantSchema } from '../../persistence/entities.js';
import type { Caller } from '../audit.js';
import { audited, retriedOnDuplicateKey, type UseCaseDeps } from '../use-case.js';
import { type ConsultationView, toView } from '../views.js';

export interface ScheduleConsultationRequest {
  readonly appointmentId: string;
  readonly doctorId: string;
  readonly patientId: string;
  readonly scheduledStart: Date;
  readonly scheduledEnd: Date;
  readonly provider: ProviderName | undefined;
}

/**
 * ScheduleConsultation: one consultation per appointment of the clinic. Scheduling again
 * answers the existing one (`created: false`); the same appointment with other
 * participants is ALREADY_EXISTS.
 */
export async function scheduleConsultation(
  deps: UseCaseDeps,
  caller: Caller,
  request: ScheduleConsultationRequest,
): Promise<{ consultation: ConsultationView; created: boolean }> {
  const { principal } = caller;
  const action = 'consultation.schedule';
  // Another call may schedule the same appointment between our read and our insert: then
  // the second run finds its consultation and answers it.
  const result = await retriedOnDuplicateKey(() =>
    audited(deps, caller, action, undefined, async (em, audit) => {
      authorize(principal, action);
      assertValidSlot({ start: request.scheduledStart, end: request.scheduledEnd });
      const provider = deps.providers.choose(request.provider, principal.clinicId);
      const found = await em.findOne(
        ConsultationSchema,
        { clinicId: principal.clinicId, appointmentId: request.appointmentId },
        { populate: ['participants'] },
      );
      if (found) {
        audit.resourceId = found.id;
        if (found.doctorId !== request.doctorId || found.patientId !== request.patientId) {
          throw new DomainError(
            'already_exists',
            'the appointment already has a consultation with other participants',
            'appointment_id',
          );
        }
        return { consultation: toView(found), created: false };
      }
      const now = deps.clock.now();
      const created = em.create(ConsultationSchema, {
        id: randomUUID(),
        clinicId: principal.clinicId,
        appointmentId: request.appointmentId,
        doctorId: request.doctorId,
        patientId: request.patientId,
        scheduledStart: request.scheduledStart,
        scheduledEnd: request.scheduledEnd,
        status: 'scheduled',
        provider,
        createdAt: now,
        updatedAt: now,
      });
      for (const [role, userId] of [
        ['doctor', request.doctorId],
        ['patient', request.patientId],
      ] as const) {
        created.participants.add(
          em.create(ParticipantSchema, {
            id: randomUUID(),
            consultation: created,
            clinicId: principal.clinicId,
            userId,
            role,
          }),
        );
      }
      audit.resourceId = created.id;
      await em.flush();
      return { consultation: toView(created), created: true };
    }),
  );
  if (result.created) {
    deps.logger.info({ consultationId: result.consultation.id }, 'consultation scheduled');
  }
  return result;
}
