import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { EntityManager } from '@mikro-orm/core';
import {
  type ConsultationEvent,
  durationSeconds,
  type EndReason,
  type Transition,
  transition,
} from '../domain/consultation.js';
import type { ConsultationEntity } from '../persistence/entities.js';
import { addEvent, eventScope } from './events.js';
import { toProtoEndReason } from './proto-enums.js';

/** The state-machine event each way of ending a consultation is. */
const EVENT_OF: Record<EndReason, ConsultationEvent> = {
  completed: 'end',
  max_duration: 'end',
  provider_closed: 'end',
  cancelled: 'cancel',
  no_show: 'mark_no_show',
};

/**
 * Ends a consultation, the one way every path does it (EndConsultation, cancelling, the
 * sweeper's no-shows and overruns, the provider closing its session): the transition,
 * the end time and reason, the duration from the start (null when it never started), the
 * new version written, and its events with that version. A consultation already ended
 * the same way is left alone (`changed: false`); any other refusal is the transition's
 * FAILED_PRECONDITION. The caller audits, and closes the provider session after commit
 * (provider-session.ts).
 */
export async function closeConsultation(
  em: EntityManager,
  c: ConsultationEntity,
  reason: EndReason,
  at: Date,
): Promise<Transition> {
  const t = transition(c.status, EVENT_OF[reason]);
  if (!t.changed) return t;
  c.status = t.to;
  c.endedAt = at;
  c.endReason = reason;
  c.durationSeconds = c.startedAt ? durationSeconds(c.startedAt, at) : null;
  c.updatedAt = at;
  await em.flush(); // the events carry the version this write gave the row
  const facts = { ...eventScope(c), at: timestampFromDate(at), version: c.version };
  if (reason === 'no_show') {
    addEvent(
      em,
      'video.consultation.no_show',
      eventScope(c),
      { ...facts, patientId: c.patientId, doctorId: c.doctorId },
      at,
    );
    return t;
  }
  if (reason === 'cancelled') {
    addEvent(em, 'video.consultation.cancelled', eventScope(c), facts, at);
    // A live consultation that is cancelled has ended, too: its listeners hear both.
    if (t.from !== 'in_progress') return t;
  }
  addEvent(
    em,
    'video.consultation.ended',
    eventScope(c),
    {
      ...facts,
      sessionId: c.providerSessionId ?? '',
      durationSeconds: c.durationSeconds ?? 0,
      reason: toProtoEndReason(reason),
    },
    at,
  );
  return t;
}
