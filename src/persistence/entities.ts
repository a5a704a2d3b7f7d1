import { defineEntity, type InferEntity, p } from '@mikro-orm/core';
import type { DisconnectReason } from '../domain/attendance.js';
import type {
  ConsultationStatus,
  EndReason,
  ParticipantRole,
  ProviderName,
  RecordingStatus,
  TechnicalIssueKind,
} from '../domain/consultation.js';

/**
 * The tables, as MikroORM entities. Every row that belongs to a consultation carries its
 * clinic id, so that every query can be scoped by clinic.
 */
export const ConsultationSchema = defineEntity({
  name: 'Consultation',
  tableName: 'consultation',
  properties: {
    id: p.uuid().primary(),
    clinicId: p.string().length(64),
    appointmentId: p.string().length(64),
    doctorId: p.string().length(128),
    patientId: p.string().length(128),
    scheduledStart: p.datetime(),
    scheduledEnd: p.datetime(),
    status: p.string().length(16).$type<ConsultationStatus>(),
    provider: p.string().length(16).$type<ProviderName>().nullable(),
    providerSessionId: p.string().length(128).nullable(),
    startedAt: p.datetime().nullable(),
    endedAt: p.datetime().nullable(),
    durationSeconds: p.integer().nullable(),
    endReason: p.string().length(16).$type<EndReason>().nullable(),
    recordingId: p.string().length(128).nullable(),
    recordingStatus: p.string().length(16).$type<RecordingStatus>().nullable(),
    recordingUrl: p.string().length(1024).nullable(),
    /** The reconciler's lease: when a copy last compared it with the provider's state. */
    reconciledAt: p.datetime().nullable(),
    /** Optimistic lock: an UPDATE that finds another version fails instead of winning. */
    version: p.integer().version(),
    createdAt: p.datetime(),
    updatedAt: p.datetime(),
    participants: () => p.oneToMany(ParticipantSchema).mappedBy('consultation'),
  },
  uniques: [{ properties: ['clinicId', 'appointmentId'] }],
  indexes: [
    { properties: ['provider', 'providerSessionId'] },
    // The history's keyset pages, in their order (time, then id: migration 20261129170000).
    { properties: ['clinicId', 'doctorId', 'scheduledStart', 'id'] },
    { properties: ['clinicId', 'patientId', 'scheduledStart', 'id'] },
    { properties: ['clinicId', 'scheduledStart', 'id'] },
    {
      // The reconciler's work: consultations in progress, least recently reconciled first.
      name: 'consultation_in_progress_index',
      expression:
        'create index "consultation_in_progress_index" on "consultation" ("reconciled_at") where "status" = \'in_progress\'',
    },
    {
      // The waiting room's: the consultations still open, whatever the clinic's history.
      name: 'consultation_open_index',
      expression:
        'create index "consultation_open_index" on "consultation" ("clinic_id", "doctor_id") where "status" in (\'waiting\', \'in_progress\')',
    },
    {
      // The sweeper's: the consultations not finished yet, by scheduled end.
      name: 'consultation_unfinished_index',
      expression:
        'create index "consultation_unfinished_index" on "consultation" ("scheduled_end") where "status" in (\'scheduled\', \'waiting\', \'in_progress\')',
    },
  ],
});
export type ConsultationEntity = InferEntity<typeof ConsultationSchema>;

export const ParticipantSchema = defineEntity({
  name: 'Participant',
  tableName: 'participant',
  properties: {
    id: p.uuid().primary(),
    consultation: () => p.manyToOne(ConsultationSchema).deleteRule('cascade'),
    clinicId: p.string().length(64),
    userId: p.string().length(128),
    role: p.string().length(16).$type<ParticipantRole>(),
    checkedInAt: p.datetime().nullable(),
    admittedAt: p.datetime().nullable(),
    firstTokenAt: p.datetime().nullable(),
    firstJoinedAt: p.datetime().nullable(),
    lastLeftAt: p.datetime().nullable(),
    connectedSeconds: p.integer().default(0),
    connected: p.boolean().default(false),
    lastDisconnectReason: p.string().length(32).$type<DisconnectReason>().nullable(),
    recordingConsentAt: p.datetime().nullable(),
  },
  uniques: [{ properties: ['consultation', 'role'] }],
  indexes: [{ properties: ['clinicId', 'checkedInAt'] }],
});
export type ParticipantEntity = InferEntity<typeof ParticipantSchema>;

/**
 * One connection of a participant to the provider's session, from webhooks and the
 * reconciler. A participant's attendance totals are recomputed from these rows.
 */
export const ProviderConnectionSchema = defineEntity({
  name: 'ProviderConnection',
  tableName: 'provider_connection',
  properties: {
    id: p.uuid().primary(),
    consultation: () => p.manyToOne(ConsultationSchema).deleteRule('cascade'),
    participant: () => p.manyToOne(ParticipantSchema).deleteRule('cascade'),
    clinicId: p.string().length(64),
    provider: p.string().length(16).$type<ProviderName>(),
    connectionId: p.string().length(128),
    joinedAt: p.datetime().nullable(),
    leftAt: p.datetime().nullable(),
    reason: p.string().length(32).$type<DisconnectReason>().nullable(),
  },
  uniques: [{ properties: ['provider', 'connectionId'] }],
  indexes: [
    {
      // Connections still counted as open: few at any time, whatever the history.
      name: 'provider_connection_open_index',
      expression:
        'create index "provider_connection_open_index" on "provider_connection" ("consultation_id") where "left_at" is null',
    },
    // A participant's connections (attendance totals), a consultation's (the reconciler).
    { properties: ['participant'] },
    { properties: ['consultation'] },
  ],
});
export type ProviderConnectionEntity = InferEntity<typeof ProviderConnectionSchema>;

export const TechnicalIssueSchema = defineEntity({
  name: 'TechnicalIssue',
  tableName: 'technical_issue',
  properties: {
    id: p.uuid().primary(),
    consultation: () => p.manyToOne(ConsultationSchema).deleteRule('cascade'),
    clinicId: p.string().length(64),
    reporterId: p.string().length(128),
    reporterRole: p.string().length(16).$type<ParticipantRole>(),
    issueType: p.string().length(16).$type<TechnicalIssueKind>(),
    description: p.text(),
    reportedAt: p.datetime(),
    /** The client's key for a retried report; unique per consultation and reporter. */
    idempotencyKey: p.string().length(64).nullable(),
  },
  indexes: [
    {
      name: 'technical_issue_idempotency_key_unique',
      expression:
        'create unique index "technical_issue_idempotency_key_unique" on "technical_issue" ("consultation_id", "reporter_id", "idempotency_key") where "idempotency_key" is not null',
    },
    // A consultation's latest issues (each WatchConsultation view), newest first.
    { properties: ['consultation', 'reportedAt', 'id'] },
  ],
});
export type TechnicalIssueEntity = InferEntity<typeof TechnicalIssueSchema>;

export const SharedImageSchema = defineEntity({
  name: 'SharedImage',
  tableName: 'shared_image',
  properties: {
    id: p.uuid().primary(),
    consultation: () => p.manyToOne(ConsultationSchema).deleteRule('cascade'),
    clinicId: p.string().length(64),
    sharedBy: p.string().length(128),
    contentType: p.string().length(64),
    sizeBytes: p.integer(),
    sha256: p.string().length(64),
    /** The bytes stay in PostgreSQL for now; loaded only when asked for. */
    content: p.blob().lazy(),
    sharedAt: p.datetime(),
    /** The client's key for a retried upload; unique per consultation and sharer. */
    idempotencyKey: p.string().length(64).nullable(),
  },
  indexes: [
    {
      name: 'shared_image_idempotency_key_unique',
      expression:
        'create unique index "shared_image_idempotency_key_unique" on "shared_image" ("consultation_id", "shared_by", "idempotency_key") where "idempotency_key" is not null',
    },
  ],
});
export type SharedImageEntity = InferEntity<typeof SharedImageSchema>;

/**
 * The HIPAA audit trail: one row per read or change of consultation data, allowed or
 * not. Append-only: the database itself refuses UPDATE, DELETE and TRUNCATE on it.
 */
export const AuditEntrySchema = defineEntity({
  name: 'AuditEntry',
  tableName: 'audit_entry',
  properties: {
    id: p.uuid().primary(),
    at: p.datetime(),
    actorId: p.string().length(128),
    actorRole: p.string().length(32),
    clinicId: p.string().length(64),
    action: p.string().length(64),
    resourceType: p.string().length(32),
    resourceId: p.string().length(128).nullable(),
    outcome: p.string().length(32),
    /** A refused attempt's consultation's clinic (migration 20261127101500-audit-target-clinic). */
    targetClinicId: p.string().length(64).nullable(),
    requestId: p.string().length(64).nullable(),
    clientAddress: p.string().length(64).nullable(),
    userAgent: p.string().length(256).nullable(),
  },
  indexes: [
    // The trail's keyset pages, in their order (time, then id: migration 20261129170000).
    { properties: ['clinicId', 'at', 'id'] },
    { properties: ['clinicId', 'resourceId', 'at', 'id'] },
    { properties: ['clinicId', 'actorId', 'at', 'id'] },
    {
      properties: ['targetClinicId', 'at', 'id'],
      name: 'audit_entry_target_clinic_id_at_id_index',
      expression:
        'create index "audit_entry_target_clinic_id_at_id_index" on "audit_entry" ("target_clinic_id", "at", "id") where "target_clinic_id" is not null',
    },
  ],
  // Declared so that generated migrations keep it; created by the audit-trail migration
  // with the function audit_entry_append_only(). That migration also adds a statement-level
  // TRUNCATE trigger, which the schema diff neither sees nor touches.
  triggers: [
    {
      name: 'audit_entry_no_update_or_delete',
      timing: 'before',
      events: ['update', 'delete'],
      forEach: 'row',
      expression:
        'create trigger audit_entry_no_update_or_delete before update or delete on "audit_entry" for each row execute function audit_entry_append_only();',
    },
  ],
});
export type AuditEntryEntity = InferEntity<typeof AuditEntrySchema>;

/**
 * The transactional outbox: an event row is written in the same transaction as the change
 * it announces; the relay publishes pending rows to Kafka and marks them sent. `seq` keeps
 * the commit order, so events of one appointment go out in the order they happened.
 */
export const OutboxMessageSchema = defineEntity({
  name: 'OutboxMessage',
  tableName: 'outbox_message',
  properties: {
    /** Also the CloudEvents `ce_id`: consumers deduplicate by it. */
    id: p.uuid().primary(),
    seq: p.bigint('number').autoincrement().unique(),
    type: p.string().length(64),
    /** The record key: the appointment id, so one appointment's events stay in order. */
    key: p.string().length(64),
    subject: p.string().length(64),
    clinicId: p.string().length(64),
    payload: p.json<Record<string, unknown>>(),
    createdAt: p.datetime(),
    sentAt: p.datetime().nullable(),
    attempts: p.integer().default(0),
    lastError: p.string().length(500).nullable(),
    /** The token of the relay's claim on this event (see src/messaging/outbox-relay.ts). */
    claimedBy: p.uuid().nullable(),
    /** When that claim lapses unless its copy renews it. */
    claimedUntil: p.datetime().nullable(),
    /** The writing call's trace context (`traceparent`), when it was traced (tracing.ts). */
    traceParent: p.string().length(55).nullable(),
  },
  indexes: [
    {
      properties: ['seq'],
      name: 'outbox_message_pending_index',
      expression:
        'create index "outbox_message_pending_index" on "outbox_message" ("seq") where "sent_at" is null',
    },
    {
      properties: ['key', 'seq'],
      name: 'outbox_message_pending_key_index',
      expression:
        'create index "outbox_message_pending_key_index" on "outbox_message" ("key", "seq") where "sent_at" is null',
    },
  ],
});
export type OutboxMessageEntity = InferEntity<typeof OutboxMessageSchema>;

/**
 * The consumer's inbox: every event already applied, by its source and id (what makes a
 * CloudEvent unique), written in the same transaction as its effect, so a redelivered
 * event changes nothing.
 */
export const InboxMessageSchema = defineEntity({
  name: 'InboxMessage',
  tableName: 'inbox_message',
  properties: {
    /**
     * CloudEvents `source` (`webhook:<provider>` for provider reports); '' for entries
     * recorded before sources were kept, which match an event of that id from any source.
     */
    source: p.string().length(256).primary(),
    eventId: p.string().length(256).primary(),
    topic: p.string().length(128),
    handledAt: p.datetime(),
  },
});
export type InboxMessageEntity = InferEntity<typeof InboxMessageSchema>;

export const ENTITIES = [
  ConsultationSchema,
  ParticipantSchema,
  TechnicalIssueSchema,
  SharedImageSchema,
  ProviderConnectionSchema,
  AuditEntrySchema,
  OutboxMessageSchema,
  InboxMessageSchema,
];
