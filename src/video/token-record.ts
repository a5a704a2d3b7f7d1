import type { EntityManager } from '@mikro-orm/postgresql';
import type { ProviderName } from '../domain/consultation.js';
import { AUDIT_INSERT, type AuditRow } from './audit.js';
import type { OutboxRow } from './events.js';

/** What GenerateToken writes once the provider issued the token. */
export interface TokenRecord {
  readonly consultationId: string;
  /** The version the checks before the provider call saw. */
  readonly version: number;
  /** The provider session to store, when the consultation had none yet. */
  readonly newSession: { readonly provider: ProviderName; readonly sessionId: string } | undefined;
  /** The participant the token is for: their first token time is set if unset. */
  readonly participantId: string;
  readonly at: Date;
  readonly audit: AuditRow;
  readonly event: OutboxRow;
}

/**
 * GenerateToken's record as one statement, so one round trip and one commit (a statement
 * outside a transaction commits on its own): the consultation checked at the version the
 * checks saw (row-locked until the commit; with a new session, updated and its version
 * bumped), the participant's first token time, the audit entry and the event. Nothing is
 * written unless the consultation is still at that version; the answer is then false, and
 * the caller loads and checks again in a unit of work.
 */
export async function recordTokenAtVersion(em: EntityManager, r: TokenRecord): Promise<boolean> {
  const [checked, checkedParams] = r.newSession
    ? [
        `update consultation set provider = ?, provider_session_id = ?, updated_at = ?,
           version = version + 1
         where id = ? and version = ? and provider_session_id is null returning id`,
        [r.newSession.provider, r.newSession.sessionId, r.at, r.consultationId, r.version],
      ]
    : [AT_VERSION, [r.consultationId, r.version]];
  const { audit, event } = r;
  const rows = await em.execute<{ written: number }[]>(recordTokenSql(checked), [
    ...checkedParams,
    r.at,
    r.participantId,
    ...AUDIT_INSERT.params(audit),
    event.id,
    event.type,
    event.key,
    event.subject,
    event.clinicId,
    JSON.stringify(event.payload),
    event.createdAt,
    event.traceParent,
  ]);
  return rows[0]?.written === 1;
}

/** The check when the session stays: the consultation at that version, row-locked. */
export const AT_VERSION = 'select id from consultation where id = ? and version = ? for share';

/**
 * The statement (MikroORM's `?` placeholders): `checked`'s parameters, then the first
 * token time and the participant, the audit entry's values, and the event's id, type,
 * key, subject, clinic, payload, time and trace context. Answers `written`: 1, or 0 when
 * nothing was.
 */
export const recordTokenSql = (checked: string) =>
  `with c as (${checked}
   ), token as (
     update participant set first_token_at = ?
     where id = ? and first_token_at is null and exists (select from c)
   ), entry as (
     insert into audit_entry (${AUDIT_INSERT.columns}) select ${AUDIT_INSERT.values} from c
   ), event as (
     insert into outbox_message (id, type, key, subject, clinic_id, payload, created_at, trace_parent)
     select ?, ?, ?, ?, ?, ?::jsonb, ?, ? from c
   )
   select count(*)::int as written from c`;
