import {
  DeadlockException,
  OptimisticLockError,
  UniqueConstraintViolationException,
} from '@mikro-orm/core';
import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import type { Logger } from 'pino';
import type { Action } from '../domain/access.js';
import type { WindowRules } from '../domain/consultation.js';
import { DomainError } from '../domain/errors.js';
import type { Clock, ProviderRegistry } from '../domain/ports.js';
import type { ConsultationEntity } from '../persistence/entities.js';
import {
  addAuditEntry,
  type Caller,
  EventAlreadyHandled,
  insertAuditEntry,
  recordRefusal,
} from './audit.js';
import { loadConsultation } from './consultation-access.js';
import { addedEvents, type OutboxSignal } from './events.js';
import { recordFirstDelivery } from './inbox.js';
import type { PageTokens } from './pagination.js';
import type { Watching } from './watching.js';

/** What every use case may use: one object, built once at start (see app.ts). */
export interface UseCaseDeps {
  readonly orm: MikroORM;
  readonly providers: ProviderRegistry;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly rules: WindowRules & { readonly maxImageBytes: number };
  /** Signs and checks the history's page tokens (PAGE_TOKEN_SECRET). */
  readonly pageTokens: PageTokens;
  /** Called each time a unit of work lost a race and is replayed (a metric counts them). */
  readonly onReplay?: ((reason: ReplayReason) => void) | undefined;
  /** Called for every refusal whose audit entry could not be written. */
  readonly onRefusalNotAudited?: (() => void) | undefined;
  /** The change feed and the caps of the watch streams; absent where nothing watches. */
  readonly watching?: Watching | undefined;
  /** Told after a unit of work committed events (the relay then publishes at once). */
  readonly outbox?: Pick<OutboxSignal, 'committed'> | undefined;
  /**
   * A transaction the caller opened and commits (the appointment consumer applies a batch
   * of events in one). The unit of work runs in it as it is: not replayed, not committed,
   * the outbox not told, and a refusal not recorded, since the caller rolls the whole
   * transaction back and applies the events again one by one, which records it.
   */
  readonly transaction?: EntityManager | undefined;
}

/** Why a unit of work was replayed: its version check failed, or it was a deadlock's victim. */
export type ReplayReason = 'version_conflict' | 'deadlock';

/** How often a use case is replayed when another call changed the consultation first. */
const MAX_ATTEMPTS = 5;

/**
 * Runs one unit of work in a transaction on a fresh EntityManager (or in the caller's,
 * `deps.transaction`). A lost optimistic race replays the whole unit, which then sees
 * the winner's state and decides again.
 */
export async function unitOfWork<T>(
  deps: Pick<UseCaseDeps, 'orm' | 'onReplay' | 'outbox' | 'transaction'>,
  work: (em: EntityManager) => Promise<T>,
): Promise<T> {
  if (deps.transaction) return work(deps.transaction);
  for (let attempt = 1; ; attempt++) {
    try {
      let events = false;
      const result = await deps.orm.em.fork().transactional(async (em) => {
        const done = await work(em);
        events = addedEvents(em);
        return done;
      });
      if (events) deps.outbox?.committed();
      return result;
    } catch (error) {
      // A lost race: another unit changed the row first, or PostgreSQL chose this one as
      // the victim of a deadlock. Either way, replaying it is safe.
      const lost = error instanceof OptimisticLockError || error instanceof DeadlockException;
      if (lost && attempt < MAX_ATTEMPTS) {
        deps.onReplay?.(error instanceof DeadlockException ? 'deadlock' : 'version_conflict');
        continue;
      }
      if (lost) {
        throw new DomainError('unavailable', 'the consultation is changing; retry', undefined, {
          cause: error,
        });
      }
      throw error;
    }
  }
}

/**
 * The audit trail around a use case: a refusal (a DomainError) is recorded in a
 * transaction of its own, since the refused one rolled back (in a caller's transaction,
 * by the caller's replay: see `UseCaseDeps.transaction`).
 */
export async function auditRefusals<T>(
  deps: UseCaseDeps,
  caller: Caller,
  action: Action,
  resourceId: string | undefined,
  run: () => Promise<T>,
): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (error instanceof DomainError && !deps.transaction) {
      const record = {
        action,
        resourceType: 'consultation',
        resourceId,
        outcome: error.code,
      } as const;
      await recordRefusal(deps, caller, record);
    }
    throw error;
  }
}

/**
 * One audited unit of work: the work, then its audit entry, commit together; a refusal
 * is recorded on its own. An event from Kafka (`caller.inbox`) is recorded in the same
 * transaction, and one recorded before is not applied again. `audit.resourceId` may be
 * set by the work (schedule learns its consultation id only when it creates it).
 */
export function audited<T>(
  deps: UseCaseDeps,
  caller: Caller,
  action: Action,
  resourceId: string | undefined,
  work: (em: EntityManager, audit: { resourceId: string | undefined }) => Promise<T>,
): Promise<T> {
  const audit = { resourceId };
  return auditRefusals(deps, caller, action, resourceId, () =>
    unitOfWork(deps, async (em) => {
      if (caller.inbox && !(await recordFirstDelivery(em, caller.inbox, deps.clock.now()))) {
        throw new EventAlreadyHandled(caller.inbox.source, caller.inbox.eventId);
      }
      const result = await work(em, audit);
      const record = { action, resourceType: 'consultation', outcome: 'allowed' } as const;
      addAuditEntry(em, caller, { ...record, resourceId: audit.resourceId }, deps.clock.now());
      return result;
    }),
  );
}

/**
 * Reads the consultation the caller may act on and checks it before a provider call, with
 * no transaction open (the unit of work that commits afterwards loads and checks again);
 * a refusal is audited like any other.
 */
export function checkBeforeProviderCall<T>(
  deps: UseCaseDeps,
  caller: Caller,
  action: Action,
  consultationId: string,
  check: (consultation: ConsultationEntity) => T,
): Promise<{ consultation: ConsultationEntity; checked: T }> {
  return auditRefusals(deps, caller, action, consultationId, async () => {
    const fork = deps.orm.em.fork();
    const consultation = await loadConsultation(fork, caller.principal, consultationId, action);
    return { consultation, checked: check(consultation) };
  });
}

/**
 * An audited read: the read, then its audit entry, written before the answer. A read
 * changes nothing, so no transaction is opened: one insert after the queries.
 */
export function auditedRead<T>(
  deps: UseCaseDeps,
  caller: Caller,
  action: Action,
  resourceId: string | undefined,
  read: (em: EntityManager) => Promise<T>,
): Promise<T> {
  return auditRefusals(deps, caller, action, resourceId, async () => {
    const em = deps.orm.em.fork();
    const result = await read(em);
    const record = { action, resourceType: 'consultation', outcome: 'allowed' } as const;
    await insertAuditEntry(em, caller, { ...record, resourceId }, deps.clock.now());
    return result;
  });
}

/**
 * Runs a use case again when it lost a race on a unique key (two calls creating the same
 * row at once): the second run finds the winner's row and answers it.
 */
export async function retriedOnDuplicateKey<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (error instanceof UniqueConstraintViolationException) return run();
    throw error;
  }
}
