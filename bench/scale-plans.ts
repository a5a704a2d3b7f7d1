/**
 * The SQL behind the scale measurement's figures (BENCH_SCALE_PLANS=<file>): every step
 * once more on the seeded database, through the service started in this process (so that
 * the statements can be watched at the pg driver, `recordQueries`), the background passes
 * on their own pool; then each `select` or `with` statement it sent is run again under
 * `EXPLAIN (ANALYZE, BUFFERS)`, inside a transaction that is rolled back (some of them
 * insert: the audit entry of a read, a claim). MikroORM and the service's own SQL inline
 * every value, so the statements are explained as they were sent (but for the key of a
 * row the step itself inserted, which cannot be inserted twice: see `explain`). They run
 * after the step, so a plan shows the rows as the step left them (a consultation already
 * checked in, say), with the same indexes and statistics.
 *
 * The file lists, per step, each statement with its plan; `planSummary` picks out of each
 * plan the nodes that read many rows (scans that return or filter out ≥ 1 000), which is
 * where a step's cost grows with the history.
 */
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import type pg from 'pg';
import { recordQueries, statementKind } from '../test/support/statements.js';
import { withClient } from './fixture.js';
import { countRows } from './scale-history.js';
import {
  READS,
  type Runner,
  reconcilerPass,
  type Side,
  type StepName,
  sweeperPass,
  visit,
} from './scale-steps.js';

/** What one step sent, and what its plans show. */
export interface PlanSummary {
  /** Its statements in order, by kind and table (`select consultation`, `begin`…). */
  readonly statements: readonly string[];
  /** Execution Time of its explained statements, added up (ms). */
  readonly explainedMs: number;
  /** Plan nodes that read many rows, e.g. `Seq Scan on consultation: 100012 rows read, 5 kept`. */
  readonly heavy: readonly string[];
}

/** Plan nodes that read at least this many rows (kept or filtered out) are named. */
const HEAVY_ROWS = 1_000;

interface Recorded {
  readonly step: StepName;
  readonly sql: readonly string[];
}

interface Explained {
  readonly sql: string;
  /** The plan's text; undefined for a statement that is not a read (insert, begin…). */
  readonly plan: string | undefined;
}

/**
 * Runs each step once on `side` (a service in this process on the seeded database),
 * explains what it sent, writes it all into `file`; answers each step's summary.
 */
export async function writePlans(
  file: string,
  side: Side,
  numbers: { readonly visit: number; readonly sweep: number },
): Promise<Record<string, PlanSummary>> {
  const recorded = await recordSteps(side, numbers);
  const summaries: Record<string, PlanSummary> = {};
  const sections: string[] = [];
  await withClient(side.databaseUrl, async (client) => {
    sections.push(header(await countRows(client)));
    for (const { step, sql } of recorded) {
      const explained: Explained[] = [];
      for (const statement of sql) {
        explained.push({
          sql: statement,
          plan: isRead(statement) ? await explain(client, statement) : undefined,
        });
      }
      const summary = summarize(sql, explained);
      summaries[step] = summary;
      sections.push(section(step, summary, explained));
    }
  });
  await writeFile(file, `${sections.join('\n\n')}\n`);
  return summaries;
}

/** Every step once, its statements recorded; a step that comes twice in a visit, once. */
async function recordSteps(
  side: Side,
  numbers: { readonly visit: number; readonly sweep: number },
): Promise<Recorded[]> {
  const recorded: Recorded[] = [];
  const recording: Runner = async <T>(step: StepName, call: () => Promise<T>): Promise<T> => {
    let result: T | undefined;
    const sql = await recordQueries(async () => {
      result = await call();
    });
    if (!recorded.some((r) => r.step === step)) recorded.push({ step, sql });
    return result as T;
  };
  await visit(side, numbers.visit, recording);
  for (const read of READS) await recording(read.name, () => read.call(side));
  await sweeperPass(side, numbers.sweep, recording);
  await reconcilerPass(side, recording);
  return recorded;
}

const isRead = (sql: string) => /^\s*(select|with)\b/i.test(sql);

/**
 * EXPLAIN (ANALYZE, BUFFERS) of `sql` in a transaction rolled back after it. A statement
 * that inserts a row with a key of its own (the audit entry of GetConsultationStatus's
 * read) cannot insert it again: that key is then replaced by a fresh UUID, and the plan
 * says so.
 */
async function explain(client: pg.Client, sql: string): Promise<string> {
  const replaced: string[] = [];
  let statement = sql;
  for (;;) {
    const outcome = await explainRolledBack(client, statement);
    if ('plan' in outcome) {
      return replaced.length > 0 ? `${outcome.plan}\n(${replaced.join('; ')})` : outcome.plan;
    }
    const { error } = outcome;
    const key = duplicateKey(error);
    if (!key || !statement.includes(`'${key.value}'`) || replaced.length >= 3) {
      return `(not explained: ${error instanceof Error ? error.message : String(error)})`;
    }
    const fresh = randomUUID();
    statement = statement.replaceAll(`'${key.value}'`, `'${fresh}'`);
    replaced.push(
      `explained with ${key.column} '${key.value}' replaced by '${fresh}': the step inserted it`,
    );
  }
}

/** The plan's text, or the error the statement failed with; rolled back either way. */
async function explainRolledBack(
  client: pg.Client,
  sql: string,
): Promise<{ readonly plan: string } | { readonly error: unknown }> {
  await client.query('begin');
  try {
    const { rows } = await client.query<{ 'QUERY PLAN': string }>(
      `explain (analyze, buffers) ${sql}`,
    );
    return { plan: rows.map((row) => row['QUERY PLAN']).join('\n') };
  } catch (error) {
    return { error };
  } finally {
    await client.query('rollback');
  }
}

/** The column and value of a unique violation's key (PostgreSQL's `detail`), if it is one. */
function duplicateKey(error: unknown): { column: string; value: string } | undefined {
  const detail = (error as { code?: string; detail?: string } | undefined)?.detail;
  const match = /^Key \((\w+)\)=\(([0-9a-f-]{36})\) already exists/.exec(detail ?? '');
  return match?.[1] && match[2] ? { column: match[1], value: match[2] } : undefined;
}

function summarize(sql: readonly string[], explained: readonly Explained[]): PlanSummary {
  let explainedMs = 0;
  const heavy: string[] = [];
  for (const { plan } of explained) {
    if (!plan) continue;
    const summary = planSummary(plan);
    explainedMs += summary.executionMs;
    heavy.push(...summary.heavy);
  }
  return {
    statements: sql.map(statementKind),
    explainedMs: Math.round(explainedMs * 100) / 100,
    heavy,
  };
}

/**
 * A scan node's line in EXPLAIN ANALYZE's text: its kind, index, relation (a Bitmap Index
 * Scan names its index there), rows and loops.
 */
const SCAN_KINDS = [
  '(?:Parallel )?Seq Scan',
  'Index Scan(?: Backward)?',
  'Index Only Scan(?: Backward)?',
  'Bitmap Heap Scan',
  'Bitmap Index Scan',
];
const SCAN = new RegExp(
  `(${SCAN_KINDS.join('|')})(?: using (\\S+))? on (\\S+).*?actual time=\\S+ rows=(\\d+) loops=(\\d+)`,
);
const REMOVED = /Rows Removed by (?:Filter|Index Recheck): (\d+)/;
const EXECUTION = /Execution Time: ([\d.]+) ms/;

/**
 * A plan's execution time, and its scan nodes that read at least HEAVY_ROWS rows: rows
 * returned times loops, plus those its filter removed.
 */
export function planSummary(plan: string): { executionMs: number; heavy: string[] } {
  const heavy: string[] = [];
  let node: { label: string; kept: number; removed: number; loops: number } | undefined;
  const flush = () => {
    if (node && node.kept + node.removed >= HEAVY_ROWS) {
      const read = node.kept + node.removed;
      heavy.push(`${node.label}: ${read} rows read${node.removed ? `, ${node.kept} kept` : ''}`);
    }
    node = undefined;
  };
  for (const line of plan.split('\n')) {
    const scan = SCAN.exec(line);
    if (scan) {
      flush();
      const [, kind, index, relation, rows, loops] = scan;
      const label = `${kind}${index ? ` using ${index}` : ''} on ${relation}`;
      node = { label, kept: Number(rows) * Number(loops), removed: 0, loops: Number(loops) };
    } else if (node) {
      const removed = REMOVED.exec(line);
      // Like rows, EXPLAIN shows it per loop.
      if (removed) node.removed += Number(removed[1]) * node.loops;
    }
  }
  flush();
  const executionMs = Number(EXECUTION.exec(plan)?.[1] ?? 0);
  return { executionMs, heavy };
}

function header(rows: Readonly<Record<string, number>>): string {
  const counts = Object.entries(rows)
    .map(([table, count]) => `${table} ${count}`)
    .join(', ');
  return [
    'Scale measurement: the SQL each step sends on the seeded database, as sent, with',
    'EXPLAIN (ANALYZE, BUFFERS) of each select/with statement (in a transaction rolled back).',
    `Rows when explained: ${counts}.`,
  ].join('\n');
}

function section(step: StepName, summary: PlanSummary, explained: readonly Explained[]): string {
  const rule = '='.repeat(100);
  const lines = [
    rule,
    `${step}: ${count(summary.statements.length, 'statement')} (${summary.statements.join(', ')})`,
    `explained statements' execution time: ${summary.explainedMs} ms`,
    summary.heavy.length > 0
      ? `nodes reading ≥ ${HEAVY_ROWS} rows: ${summary.heavy.join('; ')}`
      : `no node reads ≥ ${HEAVY_ROWS} rows`,
    rule,
  ];
  explained.forEach(({ sql, plan }, i) => {
    lines.push('', `-- [${i + 1}] ${statementKind(sql)}`, sql.trim());
    if (plan) lines.push('', indent(plan));
  });
  return lines.join('\n');
}

const count = (n: number, noun: string) => `${n} ${noun}${n === 1 ? '' : 's'}`;

const indent = (text: string) =>
  text
    .split('\n')
    .map((line) => `    ${line}`)
    .join('\n');
