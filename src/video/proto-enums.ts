import {
  ConsultationStatus,
  EndReason,
  ParticipantRole,
  DisconnectReason as ProtoDisconnectReason,
  RecordingStatus as ProtoRecordingStatus,
  Provider,
} from '../../gen/video/v1/consultation_pb.js';
import { TechnicalIssueType } from '../../gen/video/v1/video_service_pb.js';
import type { DisconnectReason } from '../domain/attendance.js';
import type * as domain from '../domain/consultation.js';
import type { TechnicalIssueKind } from '../domain/consultation.js';

/**
 * Domain ↔ proto enum values: the one place that knows both vocabularies. The API
 * handlers and the event payloads both translate through here.
 */
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
  max_duration: EndReason.MAX_DURATION,
  provider_closed: EndReason.PROVIDER_CLOSED,
};

const RECORDING_STATUS: Record<domain.RecordingStatus, ProtoRecordingStatus> = {
  started: ProtoRecordingStatus.STARTED,
  stopped: ProtoRecordingStatus.STOPPED,
  ready: ProtoRecordingStatus.READY,
  failed: ProtoRecordingStatus.FAILED,
};

const DISCONNECT_REASON: Record<DisconnectReason, ProtoDisconnectReason> = {
  left: ProtoDisconnectReason.LEFT,
  network: ProtoDisconnectReason.NETWORK,
  removed: ProtoDisconnectReason.REMOVED,
  session_closed: ProtoDisconnectReason.SESSION_CLOSED,
  provider_failure: ProtoDisconnectReason.PROVIDER_FAILURE,
  unknown: ProtoDisconnectReason.UNSPECIFIED,
};

const ISSUE_TYPE: Record<TechnicalIssueKind, TechnicalIssueType> = {
  audio: TechnicalIssueType.AUDIO,
  video: TechnicalIssueType.VIDEO,
  connection: TechnicalIssueType.CONNECTION,
  other: TechnicalIssueType.OTHER,
};
const ISSUE_TYPE_FROM_PROTO = invert(ISSUE_TYPE);

export const toProtoStatus = (status: domain.ConsultationStatus) => STATUS[status];
export const toProtoRole = (role: domain.ParticipantRole) => ROLE[role];
export const toProtoProvider = (provider: domain.ProviderName | null | undefined) =>
  provider ? PROVIDER[provider] : Provider.UNSPECIFIED;
export const toProtoEndReason = (reason: domain.EndReason | null | undefined) =>
  reason ? END_REASON[reason] : EndReason.UNSPECIFIED;
export const toProtoIssueType = (kind: TechnicalIssueKind) => ISSUE_TYPE[kind];
export const toProtoRecordingStatus = (status: domain.RecordingStatus | null | undefined) =>
  status ? RECORDING_STATUS[status] : ProtoRecordingStatus.UNSPECIFIED;
export const toProtoDisconnectReason = (reason: DisconnectReason | null | undefined) =>
  reason ? DISCONNECT_REASON[reason] : ProtoDisconnectReason.UNSPECIFIED;

/** Validation has already refused unknown and unspecified values where they matter. */
export const fromProtoStatus = (status: ConsultationStatus) => STATUS_FROM_PROTO.get(status)!;
export const fromProtoProvider = (provider: Provider) => PROVIDER_FROM_PROTO.get(provider);
export const fromProtoIssueType = (type: TechnicalIssueType) => ISSUE_TYPE_FROM_PROTO.get(type)!;

function invert<K extends string, V>(record: Record<K, V>): Map<V, K> {
  return new Map(Object.entries(record).map(([k, v]) => [v as V, k as K]));
}
