import type { EntityManager } from '@mikro-orm/core';
import { InboxMessageSchema } from '../persistence/entities.js';

/**
 * The source of inbox entries recorded before sources were kept (migration
 * 20261128090100-inbox-source): such an entry matches an event of its id from any source.
 */
export const UNKNOWN_SOURCE = '';

/** An event to apply once: CloudEvents makes it unique by source and id together. */
export interface InboxEntry {
  readonly source: string;
  readonly eventId: string;
  readonly topic: string;
}

/**
 * Records the event in the inbox of the unit of work (it commits with the effect), or
 * answers false when it was recorded before: an event of the same source and id, or an
 * entry of that id from before sources were kept.
 */
export async function recordFirstDelivery(
  em: EntityManager,
  entry: InboxEntry,
  at: Date,
): Promise<boolean> {
  const seen = await em.findOne(InboxMessageSchema, {
    eventId: entry.eventId,
    source: { $in: [entry.source, UNKNOWN_SOURCE] },
  });
  if (seen) return false;
  em.create(InboxMessageSchema, { ...entry, handledAt: at });
  return true;
}
