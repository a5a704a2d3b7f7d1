import { createHash } from 'node:crypto';
import type pg from 'pg';

/**
 * Seals that make the audit trail tamper-evident, even against a database superuser who
 * can go around its append-only triggers.
 *
 * Every audit entry records the id of the transaction that wrote it (`tx`). A sealer,
 * every AUDIT_SEAL_INTERVAL_MS in one copy at a time, seals the entries of every
 * transaction that has ended since the last seal: the transactions below
 * `pg_snapshot_xmin`, the oldest one still running, so that no entry can still appear in
 * a range once it is sealed. A seal holds the range `[tx_from, tx_to)`, its number of
 * entries, a SHA-256 digest over their canonical text in `(tx, id)` order, when it was
 * made, and the hash of the seal before it; its own hash covers all of that. Changing,
 * removing or adding an entry in a sealed range changes its digest; changing or removing
 * a seal breaks the chain of hashes after it; an entry added later but dated into the
 * past lands in a later range and is caught by its date (`BACKDATING_TOLERANCE_MS`).
 *
 * Seals in batches rather than chaining each entry to the one before: a chain per entry
 * would need every audited call to wait for the previous one's hash, a lock on the hot
 * path; the sealer reads what is already written, off it. The price is the window between
 * two seals, in which a change is detected only against the next seal's dates, and
 * removing the newest seals together with their entries is detected only against a
 * chain head kept elsewhere (each seal is logged with its hash; `npm run audit:verify`
 * prints the head). Verifying the trail, and its export for an auditor, are in
 * audit-verification.ts.
 */

/** A sealed range of the trail. */
export interface AuditSeal {
  readonly seq: number;
  readonly txFrom: string;
  readonly txTo: string;
  readonly entries: number;
  /** SHA-256 over the SHA-256 of each entry's canonical text, in (tx, id) order. */
  readonly digest: Buffer;
  readonly sealedAt: string;
  /** The previous seal's hash (32 zero bytes for the first). */
  readonly previous: Buffer;
  readonly hash: Buffer;
}

/** What the sealer and the verifier query: a pool or one client. */
export type Queryable = Pick<pg.Pool, 'query'> | Pick<pg.PoolClient, 'query'>;

/** Entries at most per seal, so that one statement never reads an unbounded range. */
export const MAX_ENTRIES_PER_SEAL = 50_000;

/**
 * How far an entry may be dated before the seal preceding its range: the longest a
 * transaction may run (the statement and idle-in-transaction timeouts) plus the clock
 * difference between copies. An entry dated earlier than that was added later than its
 * date says.
 */
export const BACKDATING_TOLERANCE_MS = 10 * 60_000;

export const GENESIS = { seq: 0, txTo: '0', hash: Buffer.alloc(32), sealedAt: undefined };

/** An entry's canonical text: its columns in a fixed order, times in UTC to the microsecond. */
export const ENTRY_TEXT = `jsonb_build_array(e.id::text,
  to_char(e.at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), e.actor_id, e.actor_role,
  e.clinic_id, e.action, e.resource_type, e.resource_id, e.outcome, e.request_id,
  e.client_address, e.user_agent, e.target_clinic_id, e.tx::text)::text`;

/** The count and digest of the entries of `[$1, <to>)`, `to` given as SQL. */
export const rangeDigest = (to: string) => `
  select count(e.id)::int as entries,
         sha256(coalesce(string_agg(sha256(convert_to(${ENTRY_TEXT}, 'UTF8')), ''::bytea
                                    order by e.tx, e.id), ''::bytea)) as digest
    from audit_entry e
   where e.tx >= $1::xid8 and e.tx < ${to}`;

/** A seal's hash: over the previous hash and its own fields, in a fixed text form. */
export function sealHash(seal: Omit<AuditSeal, 'hash'>): Buffer {
  const text = JSON.stringify([
    seal.seq,
    seal.txFrom,
    seal.txTo,
    seal.entries,
    seal.digest.toString('hex'),
    seal.sealedAt,
  ]);
  return createHash('sha256').update(seal.previous).update(text).digest();
}

export const SEAL_COLUMNS = `seq::int as seq, tx_from::text as "txFrom", tx_to::text as "txTo", entries,
  digest, to_char(sealed_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as "sealedAt",
  previous, hash`;

/** The one advisory lock the sealers of all copies take, so that one seals at a time. */
const SEALER_LOCK = 7_172_018_001;

/**
 * Seals what has ended since the last seal, in seals of at most MAX_ENTRIES_PER_SEAL
 * entries (or one transaction's entries, however many); answers the seals made (none
 * when another copy is sealing, or nothing new).
 */
export async function sealAuditTrail(pool: pg.Pool, maxSeals = 20): Promise<AuditSeal[]> {
  const made: AuditSeal[] = [];
  for (let i = 0; i < maxSeals; i++) {
    const seal = await sealOnce(pool);
    if (!seal) break;
    made.push(seal);
    if (seal.entries < MAX_ENTRIES_PER_SEAL) break;
  }
  return made;
}

async function sealOnce(pool: pg.Pool): Promise<AuditSeal | undefined> {
  const client = await pool.connect();
  try {
    await client.query('begin');
    const locked = await client.query<{ locked: boolean }>(
      'select pg_try_advisory_xact_lock($1) as locked',
      [SEALER_LOCK],
    );
    if (!locked.rows[0]?.locked) {
      await client.query('rollback');
      return undefined;
    }
    const last = (await lastSeal(client)) ?? GENESIS;
    // One statement, so one snapshot: every transaction below its xmin has ended, and
    // those that committed are visible to it.
    const range = await client.query<{
      txTo: string;
      entries: number;
      digest: Buffer;
      sealedAt: string;
    }>(
      `with bound as (select pg_snapshot_xmin(pg_current_snapshot()) as xmin),
       ended as (select e.tx from audit_entry e, bound where e.tx >= $1::xid8 and e.tx < bound.xmin),
       capped as (select tx from ended order by tx offset $2 limit 1),
       upto as (
         select case
           when (select tx from capped) is null then (select xmin from bound)
           when (select tx from capped) > (select min(tx) from ended) then (select tx from capped)
           -- One transaction wrote more than a seal holds: its entries are not split.
           else coalesce((select min(tx) from ended where tx > (select tx from capped)),
                         (select xmin from bound))
         end as tx_to),
       sealed as (${rangeDigest('(select tx_to from upto)')})
       select (select tx_to from upto)::text as "txTo", sealed.entries, sealed.digest,
              to_char(now() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as "sealedAt"
         from sealed`,
      [last.txTo, MAX_ENTRIES_PER_SEAL],
    );
    const found = range.rows[0];
    if (!found || found.entries === 0) {
      await client.query('rollback');
      return undefined;
    }
    const unsealed = {
      seq: last.seq + 1,
      txFrom: last.txTo,
      txTo: found.txTo,
      entries: found.entries,
      digest: found.digest,
      sealedAt: found.sealedAt,
      previous: last.hash,
    };
    const seal = { ...unsealed, hash: sealHash(unsealed) };
    await client.query(
      `insert into audit_seal (seq, tx_from, tx_to, entries, digest, sealed_at, previous, hash)
       values ($1, $2::xid8, $3::xid8, $4, $5, $6::timestamptz, $7, $8)`,
      [
        seal.seq,
        seal.txFrom,
        seal.txTo,
        seal.entries,
        seal.digest,
        seal.sealedAt,
        seal.previous,
        seal.hash,
      ],
    );
    await client.query('commit');
    return seal;
  } catch (error) {
    await client.query('rollback').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

async function lastSeal(db: Queryable): Promise<AuditSeal | undefined> {
  const result = await db.query<AuditSeal>(
    `select ${SEAL_COLUMNS} from audit_seal order by seq desc limit 1`,
  );
  return result.rows[0];
}
