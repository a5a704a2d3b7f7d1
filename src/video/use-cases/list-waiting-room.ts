import type { EntityManager } from '@mikro-orm/core';
import { authorize, type Principal } from '../../domain/access.js';
import { durationSeconds } from '../../domain/consultation.js';
import { ParticipantSchema } from '../../persistence/entities.js';
import type { Caller } from '../audit.js';
import { auditedRead, type UseCaseDeps } from '../use-case.js';
import { WAITING_STATUSES } from '../waiting-room.js';

export interface WaitingPatientView {
  readonly consultationId: string;
  readonly appointmentId: string;
  readonly patientId: string;
  readonly doctorId: string;
  readonly checkedInAt: Date;
  readonly waitedSeconds: number;
  readonly queuePosition: number;
  readonly scheduledStart: Date;
  readonly admitted: boolean;
}

/**
 * ListWaitingRoom: the patients checked in and not yet admitted, in arrival order, with
 * each one's place in their doctor's queue. A doctor sees their own; nurses and clinic
 * admins the clinic's, or one doctor's (`doctorId`).
 */
export async function listWaitingRoom(
  deps: UseCaseDeps,
  caller: Caller,
  request: { readonly doctorId: string },
): Promise<WaitingPatientView[]> {
  const action = 'waiting_room.list';
  return auditedRead(deps, caller, action, undefined, (em) =>
    readWaitingRoom(em, caller.principal, request.doctorId, deps.clock.now()),
  );
}

/** The waiting room the caller may see, as it is at `now` (access checked, not audited). */
export async function readWaitingRoom(
  em: EntityManager,
  principal: Principal,
  doctorId: string,
  now: Date,
): Promise<WaitingPatientView[]> {
  authorize(principal, 'waiting_room.list');
  const forDoctor = principal.role === 'doctor' ? principal.userId : doctorId || undefined;
  const waiting = await em.find(
    ParticipantSchema,
    {
      clinicId: principal.clinicId,
      role: 'patient',
      checkedInAt: { $ne: null },
      admittedAt: null,
      consultation: {
        status: { $in: WAITING_STATUSES },
        ...(forDoctor ? { doctorId: forDoctor } : {}),
      },
    },
    { populate: ['consultation'], orderBy: { checkedInAt: 'asc', id: 'asc' } },
  );
  const positions = new Map<string, number>();
  return waiting.map((p) => {
    const doctor = p.consultation.doctorId;
    const position = (positions.get(doctor) ?? 0) + 1;
    positions.set(doctor, position);
    const checkedInAt = p.checkedInAt!;
    return {
      consultationId: p.consultation.id,
      appointmentId: p.consultation.appointmentId,
      patientId: p.userId,
      doctorId: doctor,
      checkedInAt,
      waitedSeconds: durationSeconds(checkedInAt, now),
      queuePosition: position,
      scheduledStart: p.consultation.scheduledStart,
      admitted: false,
    };
  });
}
