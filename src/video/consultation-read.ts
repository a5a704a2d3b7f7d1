import type { EntityManager } from '@mikro-orm/postgresql';
import type { Principal } from '../domain/access.js';
import type { AuditRow } from './audit.js';
import type { ConsultationView, ParticipantView } from './video-service.js';

/**
 * GetConsultationStatus, the most frequent call, as one SQL statement: the consultation
 * if the caller may see it (tenancy and ownership in the WHERE clause: `canSee` of the
 * access policy, which the caller checks again on the answer),
 * its participants, and the audit entry of the read, inserted only when the row was
 * found. One round trip instead of three, and no entities to hydrate and track.
 * Answers undefined when there is nothing the caller may see (and nothing is inserted).
 */
export async function readConsultationAudited(
  em: EntityManager,
  principal: Principal,
  consultationId: string,
  audit: AuditRow,
): Promise<ConsultationView | undefined> {
  const [ownership, owner] =
    principal.role === 'doctor'
      ? ['and doctor_id = ?', [principal.userId]]
      : principal.role === 'patient'
        ? ['and patient_id = ?', [principal.userId]]
        : ['', []];
  const rows = await em.execute<ConsultationRow[]>(
    `with c as (
       select * from consultation where id = ? and clinic_id = ? ${ownership}
     ), entry as (
       insert into audit_entry (id, at, actor_id, actor_role, clinic_id, action, resource_type,
         resource_id, outcome, request_id, client_address, user_agent)
       select ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? from c
     )
     select c.*, coalesce(
       (select json_agg(p order by p.role) from participant p where p.consultation_id = c.id),
       '[]') as participants
     from c`,
    [
      consultationId,
      principal.clinicId,
      ...owner,
      audit.id,
      audit.at,
      audit.actorId,
      audit.actorRole,
      audit.clinicId,
      audit.action,
      audit.resourceType,
      audit.resourceId,
      audit.outcome,
      audit.requestId,
      audit.clientAddress,
      audit.userAgent,
    ],
  );
  const [row] = rows;
  return row && toView(row);
}

/** The columns of `consultation`, and its participants as JSON. */
interface ConsultationRow {
  readonly id: string;
  readonly appointment_id: string;
  readonly clinic_id: string;
  readonly doctor_id: string;
  readonly patient_id: string;
  readonly scheduled_start: Date;
  readonly scheduled_end: Date;
  readonly status: ConsultationView['status'];
  readonly provider: ConsultationView['provider'];
  readonly provider_session_id: string | null;
  readonly started_at: Date | null;
  readonly ended_at: Date | null;
  readonly duration_seconds: number | null;
  readonly end_reason: ConsultationView['endReason'];
  readonly version: number;
  readonly created_at: Date;
  readonly recording_status: ConsultationView['recordingStatus'];
  readonly recording_url: string | null;
  /** json_agg of participant rows: parsed by the driver, or text. */
  readonly participants: ParticipantRow[] | string;
}

interface ParticipantRow {
  readonly user_id: string;
  readonly role: ParticipantView['role'];
  readonly checked_in_at: string | null;
  readonly admitted_at: string | null;
  readonly first_token_at: string | null;
  readonly first_joined_at: string | null;
  readonly last_left_at: string | null;
  readonly connected_seconds: number;
  readonly connected: boolean;
  readonly last_disconnect_reason: ParticipantView['lastDisconnectReason'];
  readonly recording_consent_at: string | null;
}

function toView(row: ConsultationRow): ConsultationView {
  const participants: ParticipantRow[] =
    typeof row.participants === 'string' ? JSON.parse(row.participants) : row.participants;
  return {
    id: row.id,
    appointmentId: row.appointment_id,
    clinicId: row.clinic_id,
    doctorId: row.doctor_id,
    patientId: row.patient_id,
    scheduledStart: date(row.scheduled_start),
    scheduledEnd: date(row.scheduled_end),
    status: row.status,
    provider: row.provider ?? null,
    providerSessionId: row.provider_session_id,
    startedAt: dateOrNull(row.started_at),
    endedAt: dateOrNull(row.ended_at),
    durationSeconds: row.duration_seconds,
    endReason: row.end_reason ?? null,
    version: row.version,
    createdAt: date(row.created_at),
    recordingStatus: row.recording_status ?? null,
    recordingUrl: row.recording_url,
    participants: participants.map((p) => ({
      userId: p.user_id,
      role: p.role,
      checkedInAt: dateOrNull(p.checked_in_at),
      admittedAt: dateOrNull(p.admitted_at),
      firstTokenAt: dateOrNull(p.first_token_at),
      firstJoinedAt: dateOrNull(p.first_joined_at),
      lastLeftAt: dateOrNull(p.last_left_at),
      connectedSeconds: p.connected_seconds,
      connected: p.connected,
      lastDisconnectReason: p.last_disconnect_reason ?? null,
      recordingConsentAt: dateOrNull(p.recording_consent_at),
    })),
  };
}

const date = (value: Date | string) => (value instanceof Date ? value : new Date(value));
const dateOrNull = (value: Date | string | null) => (value === null ? null : date(value));
