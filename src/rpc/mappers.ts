import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { type Timestamp, timestampFromDate } from '@bufbuild/protobuf/wkt';
import { type Consultation, ParticipantSchema } from '../../gen/video/v1/consultation_pb.js';
import type {
  WatchConsultationResponseSchema,
  WatchWaitingRoomResponseSchema,
} from '../../gen/video/v1/video_service_pb.js';
import {
  toProtoDisconnectReason,
  toProtoEndReason,
  toProtoIssueType,
  toProtoProvider,
  toProtoRecordingStatus,
  toProtoRole,
  toProtoStatus,
} from '../video/proto-enums.js';
import type { WaitingPatientView } from '../video/use-cases/list-waiting-room.js';
import type {
  ConsultationUpdate,
  TechnicalIssueView,
} from '../video/use-cases/watch-consultation.js';
import type { WaitingRoomUpdate } from '../video/use-cases/watch-waiting-room.js';
import type { ConsultationView } from '../video/views.js';

/** Proto ↔ domain translation of whole messages; enum values go through proto-enums. */
export const toTimestamp = (date: Date | null): Timestamp | undefined =>
  date ? timestampFromDate(date) : undefined;
/**
 * To the millisecond, truncated: protobuf-es's timestampDate rounds, which turns the last
 * nanoseconds of 9999-12-31 into the year 10000, a date PostgreSQL cannot read.
 */
export const fromTimestamp = (ts: Timestamp | undefined): Date | undefined =>
  ts ? new Date(Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1_000_000)) : undefined;

/**
 * A view as the API's message: times as Timestamps, names as proto enums, and absent
 * values as the proto's zero values.
 *
 * Written out as the message itself rather than made by `create`, which adds the fields
 * one by one by name: past a dozen fields added that way V8 keeps the object as a
 * dictionary, slower to serialize and about a kilobyte larger, and a watch stream's
 * pipeline holds its last message for as long as the stream stays open.
 */
export function toProtoConsultation(c: ConsultationView): Consultation {
  return {
    $typeName: 'video.v1.Consultation',
    id: c.id,
    appointmentId: c.appointmentId,
    clinicId: c.clinicId,
    doctorId: c.doctorId,
    patientId: c.patientId,
    scheduledStart: toTimestamp(c.scheduledStart),
    scheduledEnd: toTimestamp(c.scheduledEnd),
    status: toProtoStatus(c.status),
    provider: toProtoProvider(c.provider),
    providerSessionId: c.providerSessionId ?? '',
    startedAt: toTimestamp(c.startedAt),
    endedAt: toTimestamp(c.endedAt),
    durationSeconds: c.durationSeconds ?? 0,
    endReason: toProtoEndReason(c.endReason),
    version: c.version,
    createdAt: toTimestamp(c.createdAt),
    recordingStatus: toProtoRecordingStatus(c.recordingStatus),
    recordingUrl: c.recordingUrl ?? '',
    participants: c.participants.map((p) =>
      create(ParticipantSchema, {
        ...p,
        role: toProtoRole(p.role),
        checkedInAt: toTimestamp(p.checkedInAt),
        admittedAt: toTimestamp(p.admittedAt),
        firstTokenAt: toTimestamp(p.firstTokenAt),
        firstJoinedAt: toTimestamp(p.firstJoinedAt),
        lastLeftAt: toTimestamp(p.lastLeftAt),
        lastDisconnectReason: toProtoDisconnectReason(p.lastDisconnectReason),
        recordingConsentAt: toTimestamp(p.recordingConsentAt),
      }),
    ),
  };
}

/** A patient of the waiting room as the API's message (times as Timestamps). */
export const toProtoWaitingPatient = (p: WaitingPatientView) => ({
  ...p,
  checkedInAt: toTimestamp(p.checkedInAt),
  scheduledStart: toTimestamp(p.scheduledStart),
});

/** A reported technical problem as the API's message. */
export const toProtoTechnicalIssue = (issue: TechnicalIssueView) => ({
  ...issue,
  reporterRole: toProtoRole(issue.reporterRole),
  issueType: toProtoIssueType(issue.issueType),
  reportedAt: toTimestamp(issue.reportedAt),
});

/** A message of WatchConsultation: a changed consultation, a move in the queue, or a keep-alive. */
export function toProtoConsultationUpdate(
  update: ConsultationUpdate,
): MessageInitShape<typeof WatchConsultationResponseSchema> {
  switch (update.kind) {
    case 'keep-alive':
      return { keepAlive: true };
    case 'queue':
      return { queuePosition: update.queuePosition };
    case 'changed':
      return {
        consultation: toProtoConsultation(update.consultation),
        technicalIssues: update.technicalIssues.map(toProtoTechnicalIssue),
        queuePosition: update.queuePosition,
      };
  }
}

/** A message of WatchWaitingRoom: the list, or a keep-alive. */
export const toProtoWaitingRoomUpdate = (
  update: WaitingRoomUpdate,
): MessageInitShape<typeof WatchWaitingRoomResponseSchema> =>
  update.kind === 'keep-alive'
    ? { keepAlive: true }
    : { patients: update.patients.map(toProtoWaitingPatient) };
