import { randomUUID } from 'node:crypto';
import type { MikroORM } from '@mikro-orm/core';

/**
 * The outbox relay's statements: claiming the earliest pending events of some keys,
 * renewing and releasing the claim, and marking its events sent. Each is one statement,
 * its own short transaction, on whichever pooled connection is free (outbox-relay.ts
 * explains the protocol).
 */

/** A claimed event, as the claim statement returns it. */
export interface OutboxRow {
  id: string;
  seq: string | number;
  type: string;
  key: string;
  subject: string;
  payload: unknown;
  created_at: Date | string;
  /** The writing call's trace context, if it was traced. */
  trace_parent: string | null;
}

/** Events this copy claimed: the earliest pending events of some keys, in commit order. */
export interface Claim {
  readonly token: string;
  readonly rows: readonly OutboxRow[];
  /** The broker acknowledged them; they still have to be marked sent. */
  published: boolean;
}

/**
 * Claims, in one statement (its own short transaction), the earliest pending events of
 * keys no other copy holds:
 *
 * - `heads`: each key's earliest pending event (nothing pending before it for the key)
 *   that no live claim covers, row-locked with SKIP LOCKED. A key's events are claimed
 *   as a prefix of its pending events, so an unexpired claim on a key always covers its
 *   earliest pending event, and the key is skipped here. Two copies claiming at once
 *   cannot both lock one head; and a head whose claim committed after this statement's
 *   snapshot is re-checked on its newest version when locked (READ COMMITTED), so it is
 *   skipped too. The head's row lock, held to the end of the statement, is what makes one
 *   copy at a time claim a key.
 * - `batch`: the pending events of those keys, in commit order (`seq`), up to the batch
 *   size; each key's share is again a prefix of its pending events.
 * - the update stamps them with this claim's token and lease, and counts the attempt.
 */
const CLAIM_SQL = `
with heads as materialized (
  select m.key
    from outbox_message m
   where m.sent_at is null
     and (m.claimed_until is null or m.claimed_until <= now())
     and not exists (
       select 1 from outbox_message e
        where e.key = m.key and e.sent_at is null and e.seq < m.seq)
   order by m.seq
   limit ?
     for update of m skip locked
), batch as materialized (
  select o.id
    from outbox_message o
   where o.sent_at is null
     and o.key in (select key from heads)
   order by o.seq
   limit ?
)
update outbox_message u
   set claimed_by = ?, claimed_until = now() + ? * interval '1 millisecond',
       attempts = u.attempts + 1
  from batch
 where u.id = batch.id
returning u.id, u.seq, u.type, u.key, u.subject, u.payload, u.created_at, u.trace_parent`;

export function outboxClaims(
  orm: MikroORM,
  options: { readonly batchSize: number; readonly leaseMs: number },
) {
  /** One statement, on whichever pooled connection is free: its own short transaction. */
  const query = async <T>(sql: string, params: unknown[]): Promise<T[]> =>
    (await orm.em.fork().getConnection().execute(sql, params)) as unknown as T[];

  async function claim(): Promise<Claim | undefined> {
    const token = randomUUID();
    const rows = await query<OutboxRow>(CLAIM_SQL, [
      options.batchSize,
      options.batchSize,
      token,
      options.leaseMs,
    ]);
    if (rows.length === 0) return undefined;
    const ordered = [...rows].sort((a, b) => (BigInt(a.seq) < BigInt(b.seq) ? -1 : 1));
    return { token, rows: ordered, published: false };
  }

  /**
   * The claim's events that are still this copy's, row-locked in commit order. Locking in
   * `seq` order means a key's earliest event is always locked first, the same row the
   * claim statement locks for the key, so a renewal and another copy's claim wait for each
   * other at most once and never deadlock. A row another copy claimed meanwhile is
   * re-checked on its newest version and left out.
   */
  const MINE = `select id from outbox_message
                 where claimed_by = ? and sent_at is null order by seq for update`;

  /** Extends the lease; answers how many of the claim's events are still this copy's. */
  async function renew(held: Claim, attempt: { error: string | undefined } | undefined) {
    const renewed = await query<{ id: string }>(
      `update outbox_message u
          set claimed_until = now() + ? * interval '1 millisecond',
              attempts = u.attempts + ?, last_error = coalesce(?, u.last_error)
         from (${MINE}) mine
        where u.id = mine.id
      returning u.id`,
      [options.leaseMs, attempt ? 1 : 0, attempt?.error?.slice(0, 500) ?? null, held.token],
    );
    return renewed.length;
  }

  /** Gives the claim's events back at once (nothing of them was published). */
  async function release(held: Claim): Promise<void> {
    await query(
      `update outbox_message u set claimed_by = null, claimed_until = null
         from (${MINE}) mine
        where u.id = mine.id`,
      [held.token],
    );
  }

  /** Marks the claim's events sent, by id and claim token; answers how many were (an event claimed since by another copy is not). */
  async function markSent(held: Claim): Promise<number> {
    const marked = await query<{ id: string }>(
      `update outbox_message u
          set sent_at = now(), claimed_by = null, claimed_until = null, last_error = null
         from (${MINE}) mine
        where u.id = mine.id and u.id in (${held.rows.map(() => '?').join(', ')})
      returning u.id`,
      [held.token, ...held.rows.map((row) => row.id)],
    );
    return marked.length;
  }

  /** How many events wait, and the age of the oldest. */
  async function backlog() {
    const [row] = await query<{ pending: string; oldest: Date | string | null }>(
      'select count(*) as pending, min(created_at) as oldest from outbox_message where sent_at is null',
      [],
    );
    const oldest = row?.oldest ? new Date(row.oldest).getTime() : undefined;
    return {
      pending: Number(row?.pending ?? 0),
      oldestAgeSeconds: oldest === undefined ? 0 : Math.max(0, (Date.now() - oldest) / 1000),
    };
  }

  return { claim, renew, release, markSent, backlog };
}
