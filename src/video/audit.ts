import { randomUUID } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/core';
import type { MikroORM } from '@mikro-orm/postgresql';
import type { Logger } from 'pino';
import type { Action, Principal } from '../domain/access.js';
import type { Clock } from '../domain/ports.js';
import { AuditEntrySchema } from '../persistence/entities.js';
import type { InboxEntry } from './inbox.js';

/** Who is calling, and from where: what an audit entry records besides the action. */
export interface Caller {
  readonly principal: Principal;
  readonly requestId?: string | undefined;
  readonly clientAddress?: string | undefined;
  readonly userAgent?: string | undefined;
  /**
   * For a Kafka event: its source, id and topic. Source and id are recorded in the inbox
   * in the same transaction as the effect, and an event already recorded is not applied
   * again.
   */
  readonly inbox?: InboxEntry | undefined;
}

/** The event of a Caller's inbox was applied before: nothing was done this time. */
export class EventAlreadyHandled extends Error {
  constructor(
    readonly source: string,
    readonly eventId: string,
  ) {
    super(`event ${eventId} of ${source} was already handled`);
    this.name = 'EventAlreadyHandled';
  }
}

export interface AuditRecord {
  readonly action: Action;
  readonly resourceType: 'consultation';
  readonly resourceId: string | undefined;
  /** `allowed`, or the code the attempt was refused with. */
  readonly outcome: string;
  /**
   * The clinic that owns the resource, recorded with a refused attempt: an attempt from
   * another clinic shows in the owner's trail too (the caller is told nothing of it).
   */
  readonly targetClinicId?: string | null | undefined;
}

/** Adds an audit entry to the unit of work: it commits (or not) with the change. */
export function addAuditEntry(em: EntityManager, caller: Caller, record: AuditRecord, at: Date) {
  em.create(AuditEntrySchema, auditRow(caller, record, at));
}

/**
 * Writes an audit entry at once, outside any unit of work: for a read, which has no
 * change to commit with; the caller answers only after it is written.
 */
export async function insertAuditEntry(
  em: EntityManager,
  caller: Caller,
  record: AuditRecord,
  at: Date,
): Promise<void> {
  await em.insert(AuditEntrySchema, auditRow(caller, record, at));
}

/** An audit entry's columns, as the entity and the one-statement reads write them. */
export type AuditRow = ReturnType<typeof auditRow>;

/**
 * For statements that insert an audit entry with SQL of their own (`insert into
 * audit_entry (${AUDIT_INSERT.columns}) select ${AUDIT_INSERT.values} from …`): its
 * columns, a placeholder for each, and the row's values in that order.
 */
export const AUDIT_INSERT = {
  columns:
    'id, at, actor_id, actor_role, clinic_id, action, resource_type, resource_id, outcome, target_clinic_id, request_id, client_address, user_agent',
  values: Array.from({ length: 13 }, () => '?').join(', '),
  params: (a: AuditRow): unknown[] => [
    a.id,
    a.at,
    a.actorId,
    a.actorRole,
    a.clinicId,
    a.action,
    a.resourceType,
    a.resourceId,
    a.outcome,
    a.targetClinicId,
    a.requestId,
    a.clientAddress,
    a.userAgent,
  ],
} as const;

export function auditRow(caller: Caller, record: AuditRecord, at: Date) {
  return {
    id: randomUUID(),
    at,
    actorId: caller.principal.userId,
    actorRole: caller.principal.role,
    clinicId: caller.principal.clinicId,
    action: record.action,
    resourceType: record.resourceType,
    resourceId: record.resourceId ?? null,
    outcome: record.outcome,
    targetClinicId: record.targetClinicId ?? null,
    requestId: caller.requestId?.slice(0, 64) ?? null,
    clientAddress: caller.clientAddress?.slice(0, 64) ?? null,
    userAgent: caller.userAgent?.slice(0, 256) ?? null,
  };
}

/** What recording a refusal needs, and whom to tell when it cannot be recorded. */
export interface RefusalAuditDeps {
  readonly orm: MikroORM;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Called for every refusal whose audit entry could not be written (a metric counts them). */
  readonly onRefusalNotAudited?: (() => void) | undefined;
}

/**
 * Records a refused attempt (the refused unit of work rolled back), with the clinic that
 * owns the consultation when it exists, whoever's it is. One statement does the same work
 * for a missing consultation and for another clinic's (the owner is a sub-select, and
 * every entry goes into the same indexes), so neither the answer nor its timing tells the
 * two apart. The caller still gets the refusal when its audit entry cannot be written (a
 * refusal must not turn into a server error), but the loss is not silent: it is logged as
 * an error with the attempt's details and counted.
 */
export async function recordRefusal(
  deps: RefusalAuditDeps,
  caller: Caller,
  record: AuditRecord,
): Promise<void> {
  const at = deps.clock.now();
  const row = auditRow(caller, record, at);
  const consultationId =
    record.resourceType === 'consultation' && record.resourceId && UUID.test(record.resourceId)
      ? record.resourceId
      : null;
  try {
    await deps.orm.em
      .fork()
      .getConnection()
      .execute(
        `insert into audit_entry (id, at, actor_id, actor_role, clinic_id, action, resource_type,
         resource_id, outcome, request_id, client_address, user_agent, target_clinic_id)
       values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,
         (select clinic_id from consultation where id = ?))`,
        [
          row.id,
          row.at,
          row.actorId,
          row.actorRole,
          row.clinicId,
          row.action,
          row.resourceType,
          row.resourceId,
          row.outcome,
          row.requestId,
          row.clientAddress,
          row.userAgent,
          consultationId,
        ],
      );
  } catch (error) {
    deps.onRefusalNotAudited?.();
    deps.logger.error(
      {
        err: error,
        requestId: caller.requestId,
        actorId: caller.principal.userId,
        actorRole: caller.principal.role,
        clinicId: caller.principal.clinicId,
        action: record.action,
        resourceId: record.resourceId,
        outcome: record.outcome,
        at: at.toISOString(),
      },
      'refusal not audited: the audit entry could not be written',
    );
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
