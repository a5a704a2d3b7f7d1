import { createHash, type Hash } from 'node:crypto';
import {
  type AuditSeal,
  BACKDATING_TOLERANCE_MS,
  ENTRY_TEXT,
  GENESIS,
  type Queryable,
  rangeDigest,
  SEAL_COLUMNS,
  sealHash,
} from './audit-seals.js';

/**
 * Verifying the audit trail against its seals (audit-seals.ts says what a seal holds):
 * in the database, or in an export of it, away from the database.
 */

/** What a verification found. */
export interface AuditVerification {
  /** The first broken link, if any; nothing after it was checked. */
  readonly broken?: { readonly seq: number; readonly problem: string };
  readonly seals: number;
  readonly sealedEntries: number;
  /** Entries written after the last seal. */
  readonly unsealedEntries: number;
  /** The last seal's number and hash: keep it elsewhere to detect the newest seals' removal. */
  readonly head: { readonly seq: number; readonly hash: string };
}

/**
 * Checks the whole trail against its seals, oldest first: each seal's number, range and
 * link to the one before, its hash, the count and digest of its entries, and that none of
 * them is dated earlier than the previous seal allows; then that the entries after the
 * last seal are not dated earlier than it allows either. Stops at the first broken link.
 */
export async function verifyAuditTrail(db: Queryable): Promise<AuditVerification> {
  let previous: PreviousSeal = GENESIS;
  let seals = 0;
  let sealedEntries = 0;
  const head = () => ({ seq: previous.seq, hash: previous.hash.toString('hex') });
  const result = (broken?: { seq: number; problem: string }): AuditVerification => {
    const verification = { seals, sealedEntries, unsealedEntries: 0, head: head() };
    return broken ? { ...verification, broken } : verification;
  };
  for (;;) {
    const page = await db.query<AuditSeal>(
      `select ${SEAL_COLUMNS} from audit_seal where seq > $1 order by seq limit 100`,
      [previous.seq],
    );
    for (const seal of page.rows) {
      const problem = await checkSeal(db, seal, previous);
      if (problem) return result({ seq: seal.seq, problem });
      previous = seal;
      seals++;
      sealedEntries += seal.entries;
    }
    if (page.rows.length < 100) break;
  }
  const tail = await db.query<{ entries: number; backdated: number }>(
    `select count(*)::int as entries,
            count(*) filter (where at < $2::timestamptz - $3 * interval '1 millisecond')::int as backdated
       from audit_entry where tx >= $1::xid8`,
    [previous.txTo, previous.sealedAt ?? '-infinity', BACKDATING_TOLERANCE_MS],
  );
  const { entries = 0, backdated = 0 } = tail.rows[0] ?? {};
  if (backdated > 0) {
    return {
      ...result({
        seq: previous.seq + 1,
        problem: `${backdated} entries written after seal ${previous.seq} are dated before it`,
      }),
      unsealedEntries: entries,
    };
  }
  return { ...result(), unsealedEntries: entries };
}

async function checkSeal(
  db: Queryable,
  seal: AuditSeal,
  previous: PreviousSeal,
): Promise<string | undefined> {
  const broken = checkLink(seal, previous);
  if (broken) return broken;
  const found = await db.query<FoundEntries>(
    `with sealed as (${rangeDigest('$2::xid8')})
     select sealed.entries, sealed.digest,
            (select count(*)::int from audit_entry
              where tx >= $1::xid8 and tx < $2::xid8
                and at < $3::timestamptz - $4 * interval '1 millisecond') as backdated
       from sealed`,
    [seal.txFrom, seal.txTo, previous.sealedAt ?? '-infinity', BACKDATING_TOLERANCE_MS],
  );
  const actual = found.rows[0];
  return actual ? checkEntries(seal, previous, actual) : 'its entries could not be read';
}

/** The seal a seal must follow (the genesis for the first). */
type PreviousSeal = Pick<AuditSeal, 'seq' | 'txTo' | 'hash'> & { readonly sealedAt?: string };

/** What a seal's range holds now, in the database or in an export. */
interface FoundEntries {
  readonly entries: number;
  readonly digest: Buffer;
  /** Entries dated earlier than the previous seal allows. */
  readonly backdated: number;
}

/** A seal's place in the chain: its number, its range, its link, its own hash. */
function checkLink(seal: AuditSeal, previous: PreviousSeal): string | undefined {
  if (seal.seq !== previous.seq + 1) {
    return `seal ${previous.seq + 1} is missing (the next is ${seal.seq})`;
  }
  if (seal.txFrom !== previous.txTo) {
    return `its range starts at transaction ${seal.txFrom}, not where seal ${previous.seq} ended (${previous.txTo})`;
  }
  if (!seal.previous.equals(previous.hash)) {
    return `it does not link to seal ${previous.seq}: that seal was changed`;
  }
  if (!sealHash(seal).equals(seal.hash)) return 'its hash does not match its content';
  return undefined;
}

/** A seal's entries as found against what it sealed. */
function checkEntries(
  seal: AuditSeal,
  previous: PreviousSeal,
  found: FoundEntries,
): string | undefined {
  if (found.entries !== seal.entries) {
    return `it sealed ${seal.entries} entries and ${found.entries} are there: entries were ${found.entries < seal.entries ? 'removed' : 'added'}`;
  }
  if (!found.digest.equals(seal.digest)) return 'its entries were changed';
  if (found.backdated > 0) {
    return `${found.backdated} of its entries are dated before seal ${previous.seq}: they were added later`;
  }
  return undefined;
}

/**
 * The sealed trail as JSON lines, for an auditor to verify away from the database
 * (`verifyAuditExport`): each seal (`{"seal": {…}}`, binary fields in hex) followed by its
 * entries' canonical texts in sealed order (`{"entry": "…"}`), oldest seal first. Entries
 * not sealed yet are not exported: nothing vouches for them.
 */
export async function* exportAuditTrail(db: Queryable): AsyncGenerator<string> {
  let seq = 0;
  for (;;) {
    const page = await db.query<AuditSeal>(
      `select ${SEAL_COLUMNS} from audit_seal where seq > $1 order by seq limit 100`,
      [seq],
    );
    for (const seal of page.rows) {
      yield JSON.stringify({
        seal: {
          ...seal,
          digest: seal.digest.toString('hex'),
          previous: seal.previous.toString('hex'),
          hash: seal.hash.toString('hex'),
        },
      });
      const entries = await db.query<{ text: string }>(
        `select ${ENTRY_TEXT} as text from audit_entry e
          where e.tx >= $1::xid8 and e.tx < $2::xid8 order by e.tx, e.id`,
        [seal.txFrom, seal.txTo],
      );
      for (const { text } of entries.rows) yield JSON.stringify({ entry: text });
      seq = seal.seq;
    }
    if (page.rows.length < 100) return;
  }
}

/**
 * Verifies an export (`exportAuditTrail`) as `verifyAuditTrail` verifies the database:
 * the chain of seals, and each seal's entries (their count, their digest recomputed from
 * the texts, their dates). Entries not sealed are not in an export: it reports none.
 */
export async function verifyAuditExport(lines: AsyncIterable<string>): Promise<AuditVerification> {
  let previous: PreviousSeal = GENESIS;
  let current: { seal: AuditSeal; entries: number; digest: Hash; backdated: number } | undefined;
  let seals = 0;
  let sealedEntries = 0;
  const summary = () => ({
    seals,
    sealedEntries,
    unsealedEntries: 0,
    head: { seq: previous.seq, hash: previous.hash.toString('hex') },
  });
  const close = (): string | undefined => {
    if (!current) return undefined;
    const { seal, entries, digest, backdated } = current;
    const broken = checkEntries(seal, previous, { entries, digest: digest.digest(), backdated });
    if (broken) return broken;
    previous = seal;
    seals++;
    sealedEntries += seal.entries;
    return undefined;
  };
  let lineNumber = 0;
  for await (const line of lines) {
    lineNumber++;
    if (line.trim() === '') continue;
    const parsed = JSON.parse(line) as { seal?: ExportedSeal; entry?: string };
    if (parsed.seal) {
      const broken = close();
      if (broken) return { ...summary(), broken: { seq: previous.seq + 1, problem: broken } };
      const seal = importedSeal(parsed.seal);
      const link = checkLink(seal, previous);
      if (link) return { ...summary(), broken: { seq: seal.seq, problem: link } };
      current = { seal, entries: 0, digest: createHash('sha256'), backdated: 0 };
    } else if (typeof parsed.entry === 'string' && current) {
      current.entries++;
      current.digest.update(createHash('sha256').update(parsed.entry, 'utf8').digest());
      const at = Date.parse(String((JSON.parse(parsed.entry) as unknown[])[1]));
      const earliest = previous.sealedAt
        ? Date.parse(previous.sealedAt) - BACKDATING_TOLERANCE_MS
        : Number.NEGATIVE_INFINITY;
      if (!(at >= earliest)) current.backdated++;
    } else {
      throw new Error(`line ${lineNumber}: neither a seal nor an entry after one`);
    }
  }
  const broken = close();
  return broken ? { ...summary(), broken: { seq: previous.seq + 1, problem: broken } } : summary();
}

type ExportedSeal = {
  readonly [K in keyof AuditSeal]: AuditSeal[K] extends Buffer ? string : AuditSeal[K];
};

function importedSeal(exported: ExportedSeal): AuditSeal {
  return {
    ...exported,
    digest: Buffer.from(exported.digest, 'hex'),
    previous: Buffer.from(exported.previous, 'hex'),
    hash: Buffer.from(exported.hash, 'hex'),
  };
}
