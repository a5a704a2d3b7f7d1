import { randomUUID } from 'node:crypto';
import type { EntityManager, FilterQuery } from '@mikro-orm/core';
import type { MikroORM } from '@mikro-orm/postgresql';
import type { Logger } from 'pino';
import { type Action, authorize, type Principal } from '../domain/access.js';
import { DomainError, invalidArgument } from '../domain/errors.js';
import type { Clock } from '../domain/ports.js';
import {
  type AuditEntryEntity,
  AuditEntrySchema,
  ConsultationSchema,
} from '../persistence/entities.js';
import type { InboxEntry } from './inbox.js';
import { type PageTokens, pageSize } from './pagination.js';

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
 * Records a refused attempt in a transaction of its own (the refused one rolled back),
 * with the clinic that owns the consultation when it exists, whoever's it is: the same
 * lookup runs for a missing consultation and another clinic's, so neither the answer nor
 * its timing differ. The caller still gets the refusal when its audit entry cannot be
 * written (a refusal must not turn into a server error), but the loss is not silent: it
 * is logged as an error with the attempt's details and counted.
 */
export async function recordRefusal(
  deps: RefusalAuditDeps,
  caller: Caller,
  record: AuditRecord,
): Promise<void> {
  const at = deps.clock.now();
  try {
    await deps.orm.em.fork().transactional(async (em) => {
      const targetClinicId = await owningClinic(em, record);
      addAuditEntry(em, caller, { ...record, targetClinicId }, at);
    });
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

/** The clinic of the consultation a record is about, if there is one. */
async function owningClinic(em: EntityManager, record: AuditRecord): Promise<string | null> {
  if (record.resourceType !== 'consultation' || !record.resourceId) return null;
  if (!UUID.test(record.resourceId)) return null;
  const found = await em.findOne(
    ConsultationSchema,
    { id: record.resourceId },
    { fields: ['clinicId'] },
  );
  return found?.clinicId ?? null;
}

export interface AuditQuery {
  readonly actorId: string;
  readonly resourceId: string;
  readonly action: string;
  readonly from: Date | undefined;
  readonly to: Date | undefined;
  readonly pageSize: number;
  readonly pageToken: string;
}

/**
 * ListAuditEntries: a clinic admin reads their clinic's trail, newest first: what their
 * clinic's users did, and what anyone attempted on their clinic's consultations.
 */
export async function listAuditEntries(
  deps: RefusalAuditDeps & { readonly pageTokens: PageTokens },
  caller: Caller,
  query: AuditQuery,
): Promise<{ entries: AuditEntryEntity[]; nextPageToken: string }> {
  const { principal } = caller;
  const record = {
    action: 'audit.list',
    resourceType: 'consultation',
    resourceId: undefined,
  } as const;
  try {
    authorize(principal, 'audit.list');
    const limit = pageSize(query.pageSize);
    if (query.from && query.to && query.to < query.from) {
      throw invalidArgument('to', 'must not be before from');
    }
    const scope = {
      list: 'audit',
      filters: [
        principal.clinicId,
        principal.userId,
        query.actorId,
        query.resourceId,
        query.action,
        query.from?.getTime(),
        query.to?.getTime(),
      ],
    } as const;
    const cursor = deps.pageTokens.decode(query.pageToken, scope);
    const where: FilterQuery<AuditEntryEntity>[] = [
      { $or: [{ clinicId: principal.clinicId }, { targetClinicId: principal.clinicId }] },
    ];
    if (query.actorId) where.push({ actorId: query.actorId });
    if (query.resourceId) where.push({ resourceId: query.resourceId });
    if (query.action) where.push({ action: query.action });
    if (query.from) where.push({ at: { $gte: query.from } });
    if (query.to) where.push({ at: { $lt: query.to } });
    if (cursor) {
      where.push({
        $or: [{ at: { $lt: cursor.time } }, { at: cursor.time, id: { $lt: cursor.id } }],
      });
    }
    return await deps.orm.em.fork().transactional(async (em) => {
      const rows = await em.find(
        AuditEntrySchema,
        { $and: where },
        { orderBy: { at: 'desc', id: 'desc' }, limit: limit + 1 },
      );
      addAuditEntry(em, caller, { ...record, outcome: 'allowed' }, deps.clock.now());
      const page = rows.slice(0, limit);
      const last = page.at(-1);
      return {
        entries: page,
        nextPageToken:
          rows.length > limit && last
            ? deps.pageTokens.encode({ time: last.at, id: last.id }, scope)
            : '',
      };
    });
  } catch (error) {
    if (error instanceof DomainError) {
      const refusal = { ...record, outcome: error.code };
      await recordRefusal(deps, caller, refusal);
    }
    throw error;
  }
}
