import type { EntityManager } from '@mikro-orm/core';
import {
  AuditEntrySchema,
  ConsultationSchema,
  InboxMessageSchema,
  ParticipantSchema,
} from '../../persistence/entities.js';
import { auditRow, type Caller } from '../audit.js';
import { type InboxEntry, UNKNOWN_SOURCE } from '../inbox.js';
import type { UseCaseDeps } from '../use-case.js';
import {
  assertSameParticipants,
  checkSchedule,
  newConsultation,
  SCHEDULE,
  type ScheduleConsultationRequest,
} from './schedule-consultation.js';

/** A caller that is an event: its source and id go into the inbox. */
export type InboxCaller = Caller & { readonly inbox: InboxEntry };

/** One appointment to schedule, for an event of the inbox. */
export interface ScheduleInBatch {
  readonly caller: InboxCaller;
  readonly request: ScheduleConsultationRequest;
}

/** What became of one event: its consultation, or nothing when it was handled before. */
export type ScheduledInBatch =
  | { readonly outcome: 'applied'; readonly consultationId: string; readonly created: boolean }
  | { readonly outcome: 'already handled: skipped' };

/**
 * ScheduleConsultation for many appointment events at once, in the caller's transaction
 * (the appointment consumer's batch): the rules of `scheduleConsultation`, each event's
 * inbox row and audit entry, in a few statements for the whole batch instead of a few
 * for each event. The inbox and the consultations the appointments already have are read
 * once; the new consultations, participants, inbox rows and audit entries are inserted
 * one statement per table. The caller logs what it scheduled once it committed. Events
 * are taken in order: an appointment scheduled earlier in
 * the batch is found like one scheduled before it.
 *
 * A refusal (a DomainError: the caller's right, the slot, an appointment with other
 * participants) is thrown as it is, which fails the caller's transaction; the caller then
 * applies the events one by one, so the refused one is audited and dead-lettered alone.
 * So is a unique key another copy won first (two copies on one partition in a rebalance).
 */
export async function scheduleConsultations(
  deps: Pick<UseCaseDeps, 'providers' | 'clock'>,
  em: EntityManager,
  batch: readonly ScheduleInBatch[],
): Promise<ScheduledInBatch[]> {
  if (batch.length === 0) return [];
  const now = deps.clock.now();
  const providers = batch.map(({ caller, request }) =>
    checkSchedule(deps, caller.principal, request),
  );

  const handled = await em.find(
    InboxMessageSchema,
    { eventId: { $in: batch.map(({ caller }) => caller.inbox.eventId) } },
    { fields: ['source', 'eventId'] },
  );
  const seen = new Set(handled.map((entry) => inboxKey(entry.source, entry.eventId)));
  // By (clinic, appointment): the unique index's columns, so each is one index probe.
  const existing = await em.find(
    ConsultationSchema,
    {
      $or: batch.map(({ caller, request }) => ({
        clinicId: caller.principal.clinicId,
        appointmentId: request.appointmentId,
      })),
    },
    { fields: ['id', 'clinicId', 'appointmentId', 'doctorId', 'patientId'] },
  );
  const byAppointment = new Map<string, { id: string; doctorId: string; patientId: string }>(
    existing.map((c) => [appointmentKey(c.clinicId, c.appointmentId), c]),
  );

  const consultations = [];
  const participants = [];
  const inbox = [];
  const audit = [];
  const outcomes: ScheduledInBatch[] = [];
  for (const [i, { caller, request }] of batch.entries()) {
    const { source, eventId } = caller.inbox;
    if (seen.has(inboxKey(source, eventId)) || seen.has(inboxKey(UNKNOWN_SOURCE, eventId))) {
      outcomes.push({ outcome: 'already handled: skipped' });
      continue;
    }
    seen.add(inboxKey(source, eventId));
    inbox.push({ ...caller.inbox, handledAt: now });
    const key = appointmentKey(caller.principal.clinicId, request.appointmentId);
    let consultation = byAppointment.get(key);
    const created = !consultation;
    if (consultation) {
      assertSameParticipants(consultation, request);
    } else {
      const rows = newConsultation(caller.principal, request, providers[i]!, now);
      consultation = rows.consultation;
      byAppointment.set(key, consultation);
      consultations.push({ ...rows.consultation, version: 1 });
      for (const p of rows.participants) participants.push({ ...p, consultation: consultation.id });
    }
    const record = { action: SCHEDULE, resourceType: 'consultation', outcome: 'allowed' } as const;
    audit.push(auditRow(caller, { ...record, resourceId: consultation.id }, now));
    outcomes.push({ outcome: 'applied', consultationId: consultation.id, created });
  }
  if (consultations.length > 0) await em.insertMany(ConsultationSchema, consultations);
  if (participants.length > 0) await em.insertMany(ParticipantSchema, participants);
  if (inbox.length > 0) await em.insertMany(InboxMessageSchema, inbox);
  if (audit.length > 0) await em.insertMany(AuditEntrySchema, audit);
  return outcomes;
}

const inboxKey = (source: string, eventId: string) => `${source}\n${eventId}`;
const appointmentKey = (clinicId: string, appointmentId: string) => `${clinicId}\n${appointmentId}`;
