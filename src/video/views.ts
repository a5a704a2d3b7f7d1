import type { DisconnectReason } from '../domain/attendance.js';
import type {
  ConsultationStatus,
  ParticipantRole,
  ProviderName,
  RecordingStatus,
} from '../domain/consultation.js';
import type { ConsultationEntity, ParticipantEntity } from '../persistence/entities.js';

/** A consultation as the use cases answer it: plain data, no ORM behind it. */
export interface ConsultationView {
  readonly id: string;
  readonly appointmentId: string;
  readonly clinicId: string;
  readonly doctorId: string;
  readonly patientId: string;
  readonly scheduledStart: Date;
  readonly scheduledEnd: Date;
  readonly status: ConsultationStatus;
  readonly provider: ProviderName | null;
  readonly providerSessionId: string | null;
  readonly startedAt: Date | null;
  readonly endedAt: Date | null;
  readonly durationSeconds: number | null;
  readonly endReason: ConsultationEntity['endReason'];
  readonly version: number;
  readonly createdAt: Date;
  readonly recordingStatus: RecordingStatus | null;
  readonly recordingUrl: string | null;
  readonly participants: readonly ParticipantView[];
}

export interface ParticipantView {
  readonly userId: string;
  readonly role: ParticipantRole;
  readonly checkedInAt: Date | null;
  readonly admittedAt: Date | null;
  readonly firstTokenAt: Date | null;
  readonly firstJoinedAt: Date | null;
  readonly lastLeftAt: Date | null;
  readonly connectedSeconds: number;
  readonly connected: boolean;
  readonly lastDisconnectReason: DisconnectReason | null;
  readonly recordingConsentAt: Date | null;
}

/** A consultation's columns, whether an entity or a row read with SQL (camel-cased). */
export type ConsultationFields = {
  readonly [K in Exclude<keyof ConsultationView, 'participants'>]:
    | ConsultationView[K]
    | (null extends ConsultationView[K] ? undefined : never);
};
export type ParticipantFields = {
  readonly [K in keyof ParticipantView]:
    | ParticipantView[K]
    | (null extends ParticipantView[K] ? undefined : never);
};

/** The one mapping to a view: each field once, absent values as null. */
export function consultationView(
  c: ConsultationFields,
  participants: readonly ParticipantFields[],
): ConsultationView {
  return {
    id: c.id,
    appointmentId: c.appointmentId,
    clinicId: c.clinicId,
    doctorId: c.doctorId,
    patientId: c.patientId,
    scheduledStart: c.scheduledStart,
    scheduledEnd: c.scheduledEnd,
    status: c.status,
    provider: c.provider ?? null,
    providerSessionId: c.providerSessionId ?? null,
    startedAt: c.startedAt ?? null,
    endedAt: c.endedAt ?? null,
    durationSeconds: c.durationSeconds ?? null,
    endReason: c.endReason ?? null,
    version: c.version,
    createdAt: c.createdAt,
    recordingStatus: c.recordingStatus ?? null,
    recordingUrl: c.recordingUrl ?? null,
    participants: participants.map((p) => ({
      userId: p.userId,
      role: p.role,
      checkedInAt: p.checkedInAt ?? null,
      admittedAt: p.admittedAt ?? null,
      firstTokenAt: p.firstTokenAt ?? null,
      firstJoinedAt: p.firstJoinedAt ?? null,
      lastLeftAt: p.lastLeftAt ?? null,
      connectedSeconds: p.connectedSeconds,
      connected: p.connected,
      lastDisconnectReason: p.lastDisconnectReason ?? null,
      recordingConsentAt: p.recordingConsentAt ?? null,
    })),
  };
}

/** A loaded consultation (participants populated) as a view. */
export const toView = (c: ConsultationEntity): ConsultationView =>
  consultationView(c, c.participants.getItems() satisfies ParticipantEntity[]);
