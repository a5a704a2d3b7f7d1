import type { EntityManager, FilterObject } from '@mikro-orm/core';
import { type Action, authorize, type Principal } from '../domain/access.js';
import type { ParticipantRole } from '../domain/consultation.js';
import { DomainError, notFound } from '../domain/errors.js';
import {
  type ConsultationEntity,
  ConsultationSchema,
  type ParticipantEntity,
} from '../persistence/entities.js';

/** Loads a consultation the caller may act on, or answers NOT_FOUND / PERMISSION_DENIED. */
export async function loadConsultation(
  em: EntityManager,
  principal: Principal,
  consultationId: string,
  action: Action,
): Promise<ConsultationEntity> {
  authorize(principal, action);
  // Tenancy and ownership are part of the query: another clinic's consultation, one the
  // caller takes no part in, and one that does not exist all take this same path.
  const consultation = await em.findOne(
    ConsultationSchema,
    { $and: [{ id: consultationId }, visibleTo(principal)] },
    // With its participants in the same query: one round trip.
    { populate: ['participants'], strategy: 'joined' },
  );
  if (!consultation) throw notFound('consultation');
  authorize(principal, action, consultation);
  return consultation;
}

/** The consultations a caller may see at all, as a query filter (see canSee). */
export function visibleTo(principal: Principal): FilterObject<ConsultationEntity> {
  switch (principal.role) {
    case 'patient':
      return { clinicId: principal.clinicId, patientId: principal.userId };
    case 'doctor':
      return { clinicId: principal.clinicId, doctorId: principal.userId };
    default:
      return { clinicId: principal.clinicId };
  }
}

export function participant(
  consultation: ConsultationEntity,
  role: ParticipantRole,
): ParticipantEntity {
  const found = consultation.participants.getItems().find((p) => p.role === role);
  if (!found) throw new Error(`consultation ${consultation.id} has no ${role}`);
  return found;
}

/** The caller's part in the consultation, or PERMISSION_DENIED for anyone else. */
export function callerRole(
  principal: Principal,
  consultation: ConsultationEntity,
): ParticipantRole {
  if (principal.role === 'doctor' && principal.userId === consultation.doctorId) return 'doctor';
  if (principal.role === 'patient' && principal.userId === consultation.patientId) {
    return 'patient';
  }
  throw new DomainError(
    'permission_denied',
    'only the consultation’s doctor and patient take part',
  );
}
