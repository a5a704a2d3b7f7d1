import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { assertInsideJoinWindow, transition } from '../../domain/consultation.js';
import type { Caller } from '../audit.js';
import { loadConsultation, participant } from '../consultation-access.js';
import { addEvent, eventScope } from '../events.js';
import { audited, type UseCaseDeps } from '../use-case.js';
import { type ConsultationView, toView } from '../views.js';
import { queuePosition } from '../waiting-room.js';

/**
 * CheckIn: the patient enters the waiting room, inside the join window. Checking in again
 * answers the place in the queue and changes nothing.
 */
export async function checkIn(
  deps: UseCaseDeps,
  caller: Caller,
  request: { readonly consultationId: string },
): Promise<{ consultation: ConsultationView; queuePosition: number }> {
  const action = 'consultation.check_in';
  return audited(deps, caller, action, request.consultationId, async (em) => {
    const c = await loadConsultation(em, caller.principal, request.consultationId, action);
    const now = deps.clock.now();
    const t = transition(c.status, 'check_in');
    assertInsideJoinWindow({ start: c.scheduledStart, end: c.scheduledEnd }, deps.rules, now);
    const patient = participant(c, 'patient');
    const firstCheckIn = !patient.checkedInAt;
    if (firstCheckIn) {
      patient.checkedInAt = now;
      c.status = t.to;
      c.updatedAt = now;
      await em.flush();
    }
    const checkedInAt = patient.checkedInAt ?? now;
    const position = patient.admittedAt ? 0 : await queuePosition(em, c, checkedInAt);
    if (firstCheckIn) {
      addEvent(
        em,
        'video.patient.waiting',
        eventScope(c),
        {
          ...eventScope(c),
          patientId: c.patientId,
          doctorId: c.doctorId,
          queuePosition: position,
          at: timestampFromDate(now),
        },
        now,
      );
    }
    return { consultation: toView(c), queuePosition: position };
  });
}
