import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

/**
 * docs/security.md, "Claims and the tests that prove them": every row names a test file
 * and the exact title of a test in it. A renamed, deleted or skipped test breaks the page
 * here, and so does a test that comes to run only with a PostgreSQL server while its row
 * says it always runs (or the other way round).
 */
const root = new URL('../../', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, root), 'utf8');

const HEADING = '## 8. Claims and the tests that prove them';
const ALWAYS = 'always';
const WITH_DATABASE = 'with `DATABASE_URL`';

interface Claim {
  readonly claim: string;
  readonly file: string;
  readonly title: string;
  readonly runs: string;
}

/** The rows of the claims table: claim | `file` | `title` | runs. */
function claimsTable(doc: string): Claim[] {
  const start = doc.indexOf(`\n${HEADING}\n`);
  if (start < 0) throw new Error(`no "${HEADING}" section`);
  const rest = doc.slice(start + HEADING.length + 2);
  const end = rest.search(/^## /m);
  const section = end < 0 ? rest : rest.slice(0, end);
  const rows = section.split('\n').filter((line) => line.startsWith('|'));
  const [header, rule, ...body] = rows;
  if (header !== '| claim | test file | test | runs |' || rule !== '|---|---|---|---|') {
    throw new Error(`the table's head is not "| claim | test file | test | runs |": ${header}`);
  }
  return body.map((row) => {
    const cells = row.slice(1, -1).split(' | ');
    if (cells.length !== 4) throw new Error(`not four cells: ${row}`);
    const [claim, file, title, runs] = cells.map((cell) => cell.trim()) as [
      string,
      string,
      string,
      string,
    ];
    const code = (cell: string) => /^`([^`]+)`$/.exec(cell)?.[1];
    const path = code(file);
    const name = code(title);
    if (!path || !name) throw new Error(`file and test must each be one \`code span\`: ${row}`);
    return { claim, file: path, title: name, runs };
  });
}

/** How the source spells the title as a string literal, in each kind of quote. */
function literals(title: string): string[] {
  const forms = [`'${title.replaceAll("'", "\\'")}'`, `"${title.replaceAll('"', '\\"')}"`];
  if (!title.includes('${')) forms.push(`\`${title.replaceAll('`', '\\`')}\``);
  return forms;
}

/** A test that runs: `it(` or `test(`, possibly `.runIf(…)`; never skip, todo or only. */
const TEST_CALL = /\b(?:it|test)(?:\.runIf\([^()]*\))?\($/;

/** Whether the code before a string literal is a test call opening, outside a comment. */
function opensTest(before: string): boolean {
  const call = TEST_CALL.exec(before);
  if (!call) return false;
  const line = before.slice(before.lastIndexOf('\n', call.index) + 1, call.index);
  return !/^\s*(?:\/\/|\/\*|\*)/.test(line);
}

/**
 * Where the file declares a test with exactly this title, and whether it runs only with a
 * PostgreSQL server (its top-level block, a `describe` or the test itself, is
 * `runIf(serverForSeveralCopies)`). Answers undefined when there is no such test, or an
 * error when there is more than one.
 */
function findTest(
  source: string,
  title: string,
): { runs: typeof ALWAYS | typeof WITH_DATABASE } | undefined {
  const found: number[] = [];
  for (const literal of literals(title)) {
    for (let at = source.indexOf(literal); at >= 0; at = source.indexOf(literal, at + 1)) {
      if (opensTest(source.slice(0, at).trimEnd())) found.push(at);
    }
  }
  if (found.length > 1) throw new Error(`${found.length} tests titled "${title}"`);
  const [at] = found;
  if (at === undefined) return undefined;
  const topLevel = source
    .slice(0, at)
    .split('\n')
    .filter((line) => /^(?:describe|it|test)\b/.test(line))
    .at(-1);
  // A test inside a skipped group does not run either.
  if (topLevel && /^describe\.(?:skip|skipIf|todo)\b/.test(topLevel)) return undefined;
  return {
    runs: topLevel?.includes('runIf(serverForSeveralCopies)') ? WITH_DATABASE : ALWAYS,
  };
}

describe('docs/security.md, claims and the tests that prove them', () => {
  const claims = claimsTable(read('docs/security.md'));

  it('names, for every claim, a test file that exists and a test in it with that exact title', () => {
    expect(claims.length).toBeGreaterThanOrEqual(30);
    const broken = claims.flatMap(({ claim, file, title, runs }) => {
      if (
        !/^test\/(?:unit|integration)\/[\w.-]+\.test\.ts$/.test(file) ||
        !existsSync(new URL(file, root))
      ) {
        return [`${claim}: no test file ${file}`];
      }
      const test = findTest(read(file), title);
      if (!test) return [`${claim}: no test "${title}" in ${file}`];
      if (runs !== test.runs) return [`${claim}: runs "${test.runs}", the table says "${runs}"`];
      return [];
    });
    expect(broken).toEqual([]);
  });

  it('lists each test once', () => {
    const keys = claims.map(({ file, title }) => `${file} › ${title}`);
    expect(keys.filter((key, i) => keys.indexOf(key) !== i)).toEqual([]);
  });

  it('is where the README sends its readers', () => {
    expect(read('README.md')).toContain(
      '(docs/security.md#8-claims-and-the-tests-that-prove-them)',
    );
  });
});

describe('finding a test by its title', () => {
  const source = [
    "import { describe, expect, it } from 'vitest';",
    "it('plain', () => {});",
    "describe('group', () => {",
    '  it("in \'quotes\'", async () => {});',
    "  it.skip('skipped', () => {});",
    "  it.todo('later');",
    "  // it('only in a comment')",
    "  const name = 'a constant, not a test';",
    '});',
    'describe.runIf(serverForSeveralCopies)(',
    "  'copies',",
    '  () => {',
    '    it(',
    "      'on a server',",
    '      async () => {},',
    '    );',
    '  },',
    ');',
    'it.runIf(serverForSeveralCopies)(',
    "  'alone on a server',",
    '  async () => {},',
    ');',
    "it('twice', () => {});",
    "it('twice', () => {});",
    "describe.skip('off', () => {",
    "  it('in a skipped group', () => {});",
    '});',
  ].join('\n');

  it('finds tests in any quote, nested or not, and says which need a server', () => {
    expect(findTest(source, 'plain')).toEqual({ runs: ALWAYS });
    expect(findTest(source, "in 'quotes'")).toEqual({ runs: ALWAYS });
    expect(findTest(source, 'on a server')).toEqual({ runs: WITH_DATABASE });
    expect(findTest(source, 'alone on a server')).toEqual({ runs: WITH_DATABASE });
  });

  it('does not count skipped tests or groups, todos, comments, other strings or a prefix of a title', () => {
    for (const title of [
      'skipped',
      'later',
      'in a skipped group',
      'only in a comment',
      'a constant, not a test',
      'plai',
    ]) {
      expect(findTest(source, title)).toBeUndefined();
    }
  });

  it('refuses a title two tests share', () => {
    expect(() => findTest(source, 'twice')).toThrow(/2 tests/);
  });
});
