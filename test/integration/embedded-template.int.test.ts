import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.js';
import { embeddedTemplates } from '../../src/persistence/embedded-template.js';

/**
 * New embedded data folders start as copies of a template made once (initdb and the
 * migrations are what makes a fresh start slow). Here the template is a real PGlite data
 * folder with one table of its own, in a cache folder of the test's.
 */
const root = await mkdtemp(join(tmpdir(), 'embedded-template-'));
afterAll(() => rm(root, { recursive: true, force: true }));
const logger = createLogger('silent');

function templates(cacheDir: string) {
  let builds = 0;
  const build = async (dir: string) => {
    builds++;
    const db = await PGlite.create(dir);
    await db.exec('create table made_by_the_template (id int)');
    await db.close();
  };
  return { t: embeddedTemplates(logger, cacheDir), build, builds: () => builds };
}

async function tables(dataDir: string) {
  const db = await PGlite.create(dataDir);
  try {
    const { rows } = await db.query<{ name: string }>(
      `select tablename as name from pg_tables where schemaname = 'public'`,
    );
    return rows.map((r) => r.name);
  } finally {
    await db.close();
  }
}

describe('embedded data folders from a template', () => {
  it('makes the template once and copies it into new folders, absent or empty', async () => {
    const { t, build, builds } = templates(join(root, 'cache'));
    const absent = join(root, 'absent');
    const empty = join(root, 'empty');
    await mkdir(empty);
    expect(await t.prepare(absent, build)).toBe('copied');
    expect(await t.prepare(empty, build)).toBe('copied');
    expect(builds()).toBe(1);
    expect(await tables(empty)).toEqual(['made_by_the_template']);
    expect(await readdir(join(root, 'cache'))).toHaveLength(1);
  }, 60_000);

  it('leaves a folder with anything in it alone', async () => {
    const { t, build, builds } = templates(join(root, 'cache-2'));
    const used = join(root, 'used');
    await mkdir(used);
    await writeFile(join(used, 'notes.txt'), 'mine');
    expect(await t.prepare(used, build)).toBe('existing');
    expect(await readdir(used)).toEqual(['notes.txt']);
    expect(await readFile(join(used, 'notes.txt'), 'utf8')).toBe('mine');
    expect(builds()).toBe(0);
  });

  it('gives copies starting at once one template', async () => {
    const { t, build } = templates(join(root, 'cache-3'));
    const outcomes = await Promise.all(
      ['one', 'two', 'three'].map((name) => t.prepare(join(root, name), build)),
    );
    expect(outcomes).toEqual(['copied', 'copied', 'copied']);
    expect(await readdir(join(root, 'cache-3'))).toHaveLength(1);
    expect(await tables(join(root, 'three'))).toEqual(['made_by_the_template']);
  }, 60_000);

  it('goes on without a template when the cache cannot be written', async () => {
    const blocked = join(root, 'not-a-folder');
    await writeFile(blocked, 'a file where the cache folder would go');
    const { t, build } = templates(blocked);
    const fresh = join(root, 'fresh');
    expect(await t.prepare(fresh, build)).toBe('unavailable');
    // Nothing half-copied is left: the engine creates the folder as it always did.
    expect(await readdir(root)).not.toContain('fresh');
    expect((await readdir(root)).filter((name) => name.includes('.copying-'))).toEqual([]);
  });
});
