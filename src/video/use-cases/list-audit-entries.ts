import type { FilterQuery } from '@mikro-orm/core';
import { authorize } from '../../domain/access.js';
import { invalidArgument } from '../../domain/errors.js';
import { type AuditEntryEntity, AuditEntrySchema } from '../../persistence/entities.js';
import type { Caller } from '../audit.js';
import { keysetPage, type PageRequest } from '../pagination.js';
import { audited, type UseCaseDeps } from '../use-case.js';

export interface ListAuditEntriesRequest extends PageRequest {
  /** Filters; '' or undefined for none. */
  readonly actorId: string;
  readonly resourceId: string;
  readonly action: string;
  readonly from: Date | undefined;
  readonly to: Date | undefined;
}

/**
 * ListAuditEntries: a clinic admin reads their clinic's trail, newest first: what their
 * clinic's users did, and what anyone attempted on their clinic's consultations. Reading
 * the trail is itself audited.
 */
export async function listAuditEntries(
  deps: UseCaseDeps,
  caller: Caller,
  request: ListAuditEntriesRequest,
): Promise<{ entries: AuditEntryEntity[]; nextPageToken: string }> {
  const { principal } = caller;
  const action = 'audit.list';
  return audited(deps, caller, action, undefined, async (em) => {
    authorize(principal, action);
    if (request.from && request.to && request.to < request.from) {
      throw invalidArgument('to', 'must not be before from');
    }
    const where: FilterQuery<AuditEntryEntity>[] = [];
    if (request.actorId) where.push({ actorId: request.actorId });
    if (request.resourceId) where.push({ resourceId: request.resourceId });
    if (request.action) where.push({ action: request.action });
    if (request.from) where.push({ at: { $gte: request.from } });
    if (request.to) where.push({ at: { $lt: request.to } });
    const scope = {
      list: 'audit',
      filters: [
        principal.clinicId,
        principal.userId,
        request.actorId,
        request.resourceId,
        request.action,
        request.from?.getTime(),
        request.to?.getTime(),
      ],
    } as const;
    const page = await keysetPage(
      deps.pageTokens,
      request,
      scope,
      'at',
      (entry: AuditEntryEntity) => entry.at,
      async ({ after, orderBy, limit }) => {
        // The clinic's own entries, then what others attempted on its consultations: two
        // index range scans of a page each, merged here. One query with `clinic_id = ? or
        // target_clinic_id = ?` cannot be read in order from either index, so PostgreSQL
        // read and sorted the clinic's whole trail for every page.
        const page = (clinic: FilterQuery<AuditEntryEntity>) =>
          em.find(
            AuditEntrySchema,
            { $and: [clinic, ...where, ...(after ? [after] : [])] },
            { orderBy, limit },
          );
        const own = await page({ clinicId: principal.clinicId });
        const targeted = await page({
          targetClinicId: principal.clinicId,
          clinicId: { $ne: principal.clinicId },
        });
        return [...own, ...targeted].sort(newestFirst).slice(0, limit);
      },
    );
    return { entries: page.items, nextPageToken: page.nextPageToken };
  });
}

/** The trail's order: newest first, then by id (as PostgreSQL orders uuids: their hex). */
function newestFirst(a: AuditEntryEntity, b: AuditEntryEntity): number {
  return b.at.getTime() - a.at.getTime() || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);
}
