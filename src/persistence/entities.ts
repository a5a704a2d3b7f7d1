import { defineEntity, type InferEntity, p } from '@mikro-orm/core';
import type {
  ConsultationStatus,
  EndReason,
  ParticipantRole,
  ProviderName,
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
    /** Optimistic lock: an UPDATE that finds another version fails instead of winning. */
    version: p.integer().version(),
    createdAt: p.datetime(),
    updatedAt: p.datetime(),
    participants: () => p.oneToMany(ParticipantSchema).mappedBy('consultation'),
  },
  uniques: [{ properties: ['clinicId', 'appointmentId'] }],
  indexes: [
    { properties: ['clinicId', 'doctorId', 'scheduledStart'] },
    { properties: ['clinicId', 'patientId', 'scheduledStart'] },
    { properties: ['clinicId', 'scheduledStart'] },
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
  },
  uniques: [{ properties: ['consultation', 'role'] }],
  indexes: [{ properties: ['clinicId', 'checkedInAt'] }],
});
export type ParticipantEntity = InferEntity<typeof ParticipantSchema>;

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
  },
});
export type TechnicalIssueEntity = InferEntity<typeof TechnicalIssueSchema>;
export type TechnicalIssueKind = 'audio' | 'video' | 'connection' | 'other';

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
  },
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
    requestId: p.string().length(64).nullable(),
    clientAddress: p.string().length(64).nullable(),
    userAgent: p.string().length(256).nullable(),
  },
  indexes: [
    { properties: ['clinicId', 'at'] },
    { properties: ['clinicId', 'resourceId', 'at'] },
    { properties: ['clinicId', 'actorId', 'at'] },
  ],
});
export type AuditEntryEntity = InferEntity<typeof AuditEntrySchema>;

export const ENTITIES = [
  ConsultationSchema,
  ParticipantSchema,
  TechnicalIssueSchema,
  SharedImageSchema,
  AuditEntrySchema,
];
