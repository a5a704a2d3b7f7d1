import { describe, expect, it } from 'vitest';
import { createPageTokens, type KeysetQuery, keysetPage } from '../../src/video/pagination.js';

/**
 * keysetPage over rows in memory: `fetch` applies the query it is handed (the cursor's
 * filter, the order and the limit) the way the database does, so the pages are exactly
 * what a client would get.
 */
const tokens = createPageTokens('unit-test-page-token-secret-of-32-chars+');
const scope = { list: 'audit', filters: ['clinic-1'] } as const;

interface Row {
  readonly id: string;
  readonly at: Date;
}

const uuid = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;
/** 7 rows; rows 3 and 4 share a time, so the id breaks the tie. */
const ROWS: Row[] = [1, 2, 3, 3, 4, 5, 6].map((minute, i) => ({
  id: uuid(i + 1),
  at: new Date(Date.UTC(2026, 0, 1, 10, minute)),
}));

function fetchFrom(rows: readonly Row[], seen: KeysetQuery<'at'>[]) {
  return async (query: KeysetQuery<'at'>) => {
    seen.push(query);
    const bound = query.after?.at.$lte;
    const after = query.after?.$or;
    return rows
      .filter(
        (row) =>
          !after ||
          (bound !== undefined &&
            row.at <= bound &&
            (row.at < after[0].at.$lt ||
              (row.at.getTime() === after[1].at.getTime() && row.id < after[1].id.$lt))),
      )
      .sort((a, b) => b.at.getTime() - a.at.getTime() || (a.id < b.id ? 1 : -1))
      .slice(0, query.limit);
  };
}

async function allPages(pageSize: number) {
  const seen: KeysetQuery<'at'>[] = [];
  const pages: string[][] = [];
  let pageToken = '';
  do {
    const page = await keysetPage(
      tokens,
      { pageSize, pageToken },
      scope,
      'at',
      (row: Row) => row.at,
      fetchFrom(ROWS, seen),
    );
    pages.push(page.items.map((row) => row.id.slice(-2)));
    pageToken = page.nextPageToken;
  } while (pageToken !== '');
  return { pages, seen };
}

describe('keysetPage', () => {
  it('pages newest first by time, then id, each row once, ending with an empty token', async () => {
    const { pages, seen } = await allPages(3);
    expect(pages).toEqual([['07', '06', '05'], ['04', '03', '02'], ['01']]);
    // One more row than a page is asked for, to know whether another page follows.
    expect(seen.map((q) => q.limit)).toEqual([4, 4, 4]);
    expect(seen[0]).toEqual({ after: undefined, orderBy: { at: 'desc', id: 'desc' }, limit: 4 });
    // The cursor is the page's last row: its time, and its id for rows of the same time.
    expect(seen[1]?.after).toEqual({
      // The bound that lets the database start its index scan at the cursor.
      at: { $lte: ROWS[4]!.at },
      $or: [{ at: { $lt: ROWS[4]!.at } }, { at: ROWS[4]!.at, id: { $lt: uuid(5) } }],
    });
  });

  it('answers no next token when the last page is exactly full', async () => {
    const { pages } = await allPages(7);
    expect(pages).toEqual([['07', '06', '05', '04', '03', '02', '01']]);
  });

  it('uses the default page size for 0 and refuses one over the maximum', async () => {
    const seen: KeysetQuery<'at'>[] = [];
    const page = (pageSize: number) =>
      keysetPage(
        tokens,
        { pageSize, pageToken: '' },
        scope,
        'at',
        (r: Row) => r.at,
        fetchFrom(ROWS, seen),
      );
    await page(0);
    expect(seen[0]?.limit).toBe(21);
    await expect(page(101)).rejects.toMatchObject({ code: 'invalid_argument', field: 'page_size' });
  });

  it('refuses a token of another list or other filters', async () => {
    const first = await keysetPage(
      tokens,
      { pageSize: 2, pageToken: '' },
      scope,
      'at',
      (r: Row) => r.at,
      fetchFrom(ROWS, []),
    );
    const other = { list: 'audit', filters: ['clinic-2'] } as const;
    await expect(
      keysetPage(
        tokens,
        { pageSize: 2, pageToken: first.nextPageToken },
        other,
        'at',
        (r: Row) => r.at,
        fetchFrom(ROWS, []),
      ),
    ).rejects.toMatchObject({ code: 'invalid_argument', field: 'page_token' });
  });
});
