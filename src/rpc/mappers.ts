import { create } from '@bufbuild/protobuf';
import { type Timestamp, timestampFromDate } from '@bufbuild/protobuf/wkt';
import {
  type Consultation,
  ConsultationSchema,
  ParticipantSchema,
} from '../../gen/video/v1/consultation_pb.js';
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
import type { TechnicalIssueView } from '../video/use-cases/watch-consultation.js';
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
 * A view as the API's message: the plain fields as they are (spread), times as
 * Timestamps, names as proto enums, and absent values as the proto's zero values.
 */
export function toProtoConsultation(c: ConsultationView): Consultation {
  return create(ConsultationSchema, {
    ...c,
    scheduledStart: toTimestamp(c.scheduledStart),
    scheduledEnd: toTimestamp(c.scheduledEnd),
    status: toProtoStatus(c.status),
    provider: toProtoProvider(c.provider),
    providerSessionId: c.providerSessionId ?? '',
    startedAt: toTimestamp(c.startedAt),
    endedAt: toTimestamp(c.endedAt),
    durationSeconds: c.durationSeconds ?? 0,
    endReason: toProtoEndReason(c.endReason),
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
  });
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
