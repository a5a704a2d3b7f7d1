import type { EntityManager } from '@mikro-orm/postgresql';
import type { Principal } from '../domain/access.js';
import { AUDIT_INSERT, type AuditRow } from './audit.js';
import {
  type ConsultationFields,
  type ConsultationView,
  consultationView,
  type ParticipantFields,
} from './views.js';

/**
 * Consultations read with SQL and made views without entities: GetConsultationStatus here,
 * and the history's pages (PARTICIPANTS_OF_C and rowView).
 *
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
  const rows = await em.execute<Record<string, unknown>[]>(readAuditedSql(ownership), [
    consultationId,
    principal.clinicId,
    ...owner,
    ...AUDIT_INSERT.params(audit),
  ]);
  const [row] = rows;
  return row && rowView(row);
}

/**
 * The statement (MikroORM's `?` placeholders): the consultation by id and clinic, with
 * `ownership` ('' or `and doctor_id = ?`/`and patient_id = ?`) narrowing it, then the
 * audit entry's values, inserted only when the row was found.
 */
export const readAuditedSql = (ownership: string) =>
  `with c as (
     select * from consultation where id = ? and clinic_id = ? ${ownership}
   ), entry as (
     insert into audit_entry (${AUDIT_INSERT.columns}) select ${AUDIT_INSERT.values} from c
   )
   select c.*, ${PARTICIPANTS_OF_C} as participants
   from c`;

/** The participants of the consultation row `c`, as one JSON array (a column of the row). */
export const PARTICIPANTS_OF_C = `coalesce(
     (select json_agg(p order by p.role) from participant p where p.consultation_id = c.id),
     '[]')`;

/**
 * A row as the view reads it: keys camel-cased, and the times that json_agg gave as text
 * (the participants') made dates again. Every column the view needs is named there once.
 */
function camelCased(row: Record<string, unknown>): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  for (const [column, value] of Object.entries(row)) {
    const field = fieldName(column);
    fields[field] = typeof value === 'string' && TIME_COLUMNS.has(column) ? new Date(value) : value;
  }
  return fields;
}

/** Each column's field name, worked out once: the columns are the tables' few. */
const FIELD_NAMES = new Map<string, string>();
function fieldName(column: string): string {
  let field = FIELD_NAMES.get(column);
  if (field === undefined) {
    field = column.replace(/_([a-z])/g, (_, letter: string) => letter.toUpperCase());
    FIELD_NAMES.set(column, field);
  }
  return field;
}

const TIME_COLUMNS = new Set([
  'scheduled_start',
  'scheduled_end',
  'started_at',
  'ended_at',
  'created_at',
  'checked_in_at',
  'admitted_at',
  'first_token_at',
  'first_joined_at',
  'last_left_at',
  'recording_consent_at',
]);

/** A consultation row with its `participants` column (PARTICIPANTS_OF_C) as a view. */
export function rowView(row: Record<string, unknown>): ConsultationView {
  // json_agg's participants: parsed by the driver, or text on the embedded engine.
  const participants = (
    typeof row.participants === 'string' ? JSON.parse(row.participants) : row.participants
  ) as Record<string, unknown>[];
  return consultationView(
    camelCased(row) as unknown as ConsultationFields,
    participants.map((p) => camelCased(p) as unknown as ParticipantFields),
  );
}
