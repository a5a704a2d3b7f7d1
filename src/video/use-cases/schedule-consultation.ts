import { randomUUID } from 'node:crypto';
import { authorize, type Principal } from '../../domain/access.js';
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

export const SCHEDULE = 'consultation.schedule';

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
  // Another call may schedule the same appointment between our read and our insert: then
  // the second run finds its consultation and answers it.
  const result = await retriedOnDuplicateKey(() =>
    audited(deps, caller, SCHEDULE, undefined, async (em, audit) => {
      const provider = checkSchedule(deps, principal, request);
      const found = await em.findOne(
        ConsultationSchema,
        { clinicId: principal.clinicId, appointmentId: request.appointmentId },
        { populate: ['participants'] },
      );
      if (found) {
        audit.resourceId = found.id;
        assertSameParticipants(found, request);
        return { consultation: toView(found), created: false };
      }
      const rows = newConsultation(principal, request, provider, deps.clock.now());
      const created = em.create(ConsultationSchema, rows.consultation);
      for (const participant of rows.participants) {
        created.participants.add(
          em.create(ParticipantSchema, { ...participant, consultation: created }),
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

/** The checks before anything is read: the caller's right, the slot; answers the provider. */
export function checkSchedule(
  deps: Pick<UseCaseDeps, 'providers'>,
  principal: Principal,
  request: ScheduleConsultationRequest,
): ProviderName {
  authorize(principal, SCHEDULE);
  assertValidSlot({ start: request.scheduledStart, end: request.scheduledEnd });
  return deps.providers.choose(request.provider, principal.clinicId);
}

/** The appointment's consultation exists: it must be the same doctor and patient. */
export function assertSameParticipants(
  found: { readonly doctorId: string; readonly patientId: string },
  request: ScheduleConsultationRequest,
): void {
  if (found.doctorId !== request.doctorId || found.patientId !== request.patientId) {
    throw new DomainError(
      'already_exists',
      'the appointment already has a consultation with other participants',
      'appointment_id',
    );
  }
}

/** The rows of a newly scheduled consultation: itself, and its doctor and patient. */
export function newConsultation(
  principal: Principal,
  request: ScheduleConsultationRequest,
  provider: ProviderName,
  now: Date,
) {
  const id = randomUUID();
  return {
    consultation: {
      id,
      clinicId: principal.clinicId,
      appointmentId: request.appointmentId,
      doctorId: request.doctorId,
      patientId: request.patientId,
      scheduledStart: request.scheduledStart,
      scheduledEnd: request.scheduledEnd,
      status: 'scheduled' as const,
      provider,
      createdAt: now,
      updatedAt: now,
    },
    participants: (
      [
        ['doctor', request.doctorId],
        ['patient', request.patientId],
      ] as const
    ).map(([role, userId]) => ({
      id: randomUUID(),
      clinicId: principal.clinicId,
      userId,
      role,
    })),
  };
}
