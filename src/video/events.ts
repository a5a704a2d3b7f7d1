import { randomUUID } from 'node:crypto';
import { create, type DescMessage, type MessageInitShape, toJson } from '@bufbuild/protobuf';
import type { EntityManager } from '@mikro-orm/core';
import {
  ConsultationCancelledSchema,
  ConsultationEndedSchema,
  ConsultationNoShowSchema,
  ConsultationStartedSchema,
  ImageSharedSchema,
  ParticipantJoinedSchema,
  ParticipantLeftSchema,
  PatientWaitingSchema,
  RecordingReadySchema,
  RecordingStartedSchema,
  TechnicalIssueReportedSchema,
  TokenGeneratedSchema,
} from '../../gen/video/v1/events_pb.js';
import { OutboxMessageSchema } from '../persistence/entities.js';
import { activeTraceparent } from '../tracing.js';

/**
 * The events the service announces, each with the `events.proto` message that is its
 * payload. The type is the CloudEvents `ce_type` and, by default, the Kafka topic.
 */
export const EVENTS = {
  'video.consultation.started': ConsultationStartedSchema,
  'video.consultation.ended': ConsultationEndedSchema,
  'video.consultation.cancelled': ConsultationCancelledSchema,
  'video.consultation.no_show': ConsultationNoShowSchema,
  'video.token.generated': TokenGeneratedSchema,
  'video.technical.issue.reported': TechnicalIssueReportedSchema,
  'video.patient.waiting': PatientWaitingSchema,
  'video.image.shared': ImageSharedSchema,
  'video.participant.joined': ParticipantJoinedSchema,
  'video.participant.left': ParticipantLeftSchema,
  'video.recording.started': RecordingStartedSchema,
  'video.recording.ready': RecordingReadySchema,
} as const satisfies Record<string, DescMessage>;

export type EventType = keyof typeof EVENTS;
export const EVENT_TYPES = Object.keys(EVENTS) as EventType[];

/** Who an event is about: the appointment (record key), the consultation (subject). */
export interface EventScope {
  readonly appointmentId: string;
  readonly consultationId: string;
  readonly clinicId: string;
}

/**
 * Who an event of this consultation is about: the record's key and subject, and the
 * three ids every consultation event's payload starts with (`{ ...eventScope(c), … }`).
 */
export function eventScope(c: {
  readonly id: string;
  readonly appointmentId: string;
  readonly clinicId: string;
}): EventScope {
  return { appointmentId: c.appointmentId, consultationId: c.id, clinicId: c.clinicId };
}

/**
 * Adds an event to the unit of work's outbox: it commits with the change it announces,
 * or not at all.
 */
export function addEvent<T extends EventType>(
  em: EntityManager,
  type: T,
  scope: EventScope,
  payload: MessageInitShape<(typeof EVENTS)[T]>,
  at: Date,
): void {
  addOutboxRow(em, outboxRow(type, scope, payload, at));
}

/** The units of work that added events: the relay is told once they commit. */
const withEvents = new WeakSet<EntityManager>();

/** Adds an outbox row made by `outboxRow` to the unit of work. */
export function addOutboxRow(em: EntityManager, row: OutboxRow): void {
  em.create(OutboxMessageSchema, row);
  withEvents.add(em);
}

/** Whether this unit of work added events. */
export const addedEvents = (em: EntityManager): boolean => withEvents.has(em);

/**
 * Tells the outbox relay that events were committed, so that it publishes them at once
 * instead of at its next poll (the poll stays, for events committed by other copies and
 * by the background tasks).
 */
export interface OutboxSignal {
  committed(): void;
  onCommitted(listener: () => void): void;
}

export function createOutboxSignal(): OutboxSignal {
  let listener: () => void = () => {};
  return {
    committed: () => listener(),
    onCommitted(next) {
      listener = next;
    },
  };
}

/** An outbox message's columns, as the entity and the one-statement writes insert them. */
export type OutboxRow = ReturnType<typeof outboxRow>;

/** The payload is stored as the message's protobuf JSON, exactly as it will be published. */
export function outboxRow<T extends EventType>(
  type: T,
  scope: EventScope,
  payload: MessageInitShape<(typeof EVENTS)[T]>,
  at: Date,
) {
  const schema: DescMessage = EVENTS[type];
  const message = create(schema, payload as MessageInitShape<DescMessage>);
  return {
    id: randomUUID(),
    type,
    key: scope.appointmentId,
    subject: scope.consultationId,
    clinicId: scope.clinicId,
    payload: toJson(schema, message) as Record<string, unknown>,
    createdAt: at,
    traceParent: activeTraceparent(),
  };
}
