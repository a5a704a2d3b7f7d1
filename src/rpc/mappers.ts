import { create } from '@bufbuild/protobuf';
import { type Timestamp, timestampDate, timestampFromDate } from '@bufbuild/protobuf/wkt';
import {
  type Consultation,
  ConsultationSchema,
  ConsultationStatus,
  EndReason,
  ParticipantRole,
  ParticipantSchema,
  Provider,
} from '../../gen/video/v1/consultation_pb.js';
import { TechnicalIssueType } from '../../gen/video/v1/video_service_pb.js';
import type * as domain from '../domain/consultation.js';
import type { TechnicalIssueKind } from '../persistence/entities.js';
import type { ConsultationView } from '../video/video-service.js';

/** Proto ↔ domain translation: the only place that knows both vocabularies. */
const STATUS: Record<domain.ConsultationStatus, ConsultationStatus> = {
  scheduled: ConsultationStatus.SCHEDULED,
  waiting: ConsultationStatus.WAITING,
  in_progress: ConsultationStatus.IN_PROGRESS,
  ended: ConsultationStatus.ENDED,
  cancelled: ConsultationStatus.CANCELLED,
  no_show: ConsultationStatus.NO_SHOW,
};
const STATUS_FROM_PROTO = invert(STATUS);

const ROLE: Record<domain.ParticipantRole, ParticipantRole> = {
  patient: ParticipantRole.PATIENT,
  doctor: ParticipantRole.DOCTOR,
};

const PROVIDER: Record<domain.ProviderName, Provider> = {
  jitsi: Provider.JITSI,
  openvidu: Provider.OPENVIDU,
};
const PROVIDER_FROM_PROTO = invert(PROVIDER);

const END_REASON: Record<domain.EndReason, EndReason> = {
  completed: EndReason.COMPLETED,
  cancelled: EndReason.CANCELLED,
  no_show: EndReason.NO_SHOW,
};

const ISSUE_TYPE: Record<
  Exclude<TechnicalIssueType, TechnicalIssueType.UNSPECIFIED>,
  TechnicalIssueKind
> = {
  [TechnicalIssueType.AUDIO]: 'audio',
  [TechnicalIssueType.VIDEO]: 'video',
  [TechnicalIssueType.CONNECTION]: 'connection',
  [TechnicalIssueType.OTHER]: 'other',
};

export const toProtoStatus = (status: domain.ConsultationStatus) => STATUS[status];
export const toProtoRole = (role: domain.ParticipantRole) => ROLE[role];
export const toProtoProvider = (provider: domain.ProviderName | null) =>
  provider ? PROVIDER[provider] : Provider.UNSPECIFIED;

/** Validation has already refused unknown and unspecified values where they matter. */
export const fromProtoStatus = (status: ConsultationStatus) => STATUS_FROM_PROTO.get(status)!;
export const fromProtoProvider = (provider: Provider) => PROVIDER_FROM_PROTO.get(provider);
export const fromProtoIssueType = (type: TechnicalIssueType) =>
  ISSUE_TYPE[type as keyof typeof ISSUE_TYPE];

export const toTimestamp = (date: Date | null): Timestamp | undefined =>
  date ? timestampFromDate(date) : undefined;
export const fromTimestamp = (ts: Timestamp | undefined): Date | undefined =>
  ts ? timestampDate(ts) : undefined;

export function toProtoConsultation(c: ConsultationView): Consultation {
  return create(ConsultationSchema, {
    id: c.id,
    appointmentId: c.appointmentId,
    clinicId: c.clinicId,
    doctorId: c.doctorId,
    patientId: c.patientId,
    scheduledStart: toTimestamp(c.scheduledStart),
    scheduledEnd: toTimestamp(c.scheduledEnd),
    status: STATUS[c.status],
    provider: toProtoProvider(c.provider),
    providerSessionId: c.providerSessionId ?? '',
    startedAt: toTimestamp(c.startedAt),
    endedAt: toTimestamp(c.endedAt),
    durationSeconds: c.durationSeconds ?? 0,
    endReason: c.endReason ? END_REASON[c.endReason] : EndReason.UNSPECIFIED,
    version: c.version,
    createdAt: toTimestamp(c.createdAt),
    participants: c.participants.map((p) =>
      create(ParticipantSchema, {
        userId: p.userId,
        role: ROLE[p.role],
        checkedInAt: toTimestamp(p.checkedInAt),
        admittedAt: toTimestamp(p.admittedAt),
        firstTokenAt: toTimestamp(p.firstTokenAt),
      }),
    ),
  });
}

function invert<K extends string, V>(record: Record<K, V>): Map<V, K> {
  return new Map(Object.entries(record).map(([k, v]) => [v as V, k as K]));
}
