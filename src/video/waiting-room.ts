import type { EntityManager } from '@mikro-orm/core';
import type { ConsultationStatus } from '../domain/consultation.js';
import { type ConsultationEntity, ParticipantSchema } from '../persistence/entities.js';

/** The statuses in which a checked-in patient counts as waiting. */
export const WAITING_STATUSES: ConsultationStatus[] = ['waiting', 'in_progress'];

/** Counts the doctor's waiting patients who checked in no later than `checkedInAt`. */
export async function queuePosition(
  em: EntityManager,
  consultation: Pick<ConsultationEntity, 'clinicId' | 'doctorId'>,
  checkedInAt: Date,
): Promise<number> {
  return em.count(ParticipantSchema, {
    clinicId: consultation.clinicId,
    role: 'patient',
    admittedAt: null,
    checkedInAt: { $lte: checkedInAt },
    consultation: { doctorId: consultation.doctorId, status: { $in: WAITING_STATUSES } },
  });
}
