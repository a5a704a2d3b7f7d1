import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { openDatabase } from '../../src/persistence/database.js';
import { embeddedTemplates } from '../../src/persistence/embedded-template.js';

/**
 * New embedded data folders start as copies of a template made once (initdb and the
 * migrations are what makes a fresh start slow). Here the template is a real PGlite data
 * folder with one table of its own, in a cache folder of the test's.
 */
const root = await mkdtemp(join(tmpdir(), 'embedded-template-'));
afterAll(() => rm(root, { recursive: true, force: true }));
const logger = createLogger('silent');

/**
 * Templates kept in `cacheDir`, made by a real PGlite (`real`) or, where only the files
 * matter, by writing a folder that looks like one (a real initdb costs seconds of CPU).
 */
function templates(cacheDir: string, real = false) {
  let builds = 0;
  const build = async (dir: string) => {
    builds++;
    if (real) {
      const db = await PGlite.create(dir);
      await db.exec('create table made_by_the_template (id int)');
      await db.close();
    } else {
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, 'PG_VERSION'), '17\n');
      await writeFile(join(dir, 'made-by'), String(builds));
    }
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
    const { t, build, builds } = templates(join(root, 'cache'), true);
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
    // All three are copies of the one template that was kept.
    const [kept] = await readdir(join(root, 'cache-3'));
    const made = await readFile(join(root, 'cache-3', kept!, 'made-by'), 'utf8');
    for (const name of ['one', 'two', 'three']) {
      expect(await readFile(join(root, name, 'made-by'), 'utf8')).toBe(made);
    }
  });

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

describe("the service's template", () => {
  it('holds only the database the service uses, so a fresh start copies a third of the files', async () => {
    const dataDir = join(root, 'service');
    const config = loadConfig({ NODE_ENV: 'test', DATA_DIR: dataDir, MIGRATE_ON_START: 'true' });
    const database = await openDatabase(config, logger);
    try {
      const sql = database.orm.em.getConnection();
      const rows = await sql.execute<{ datname: string }[]>('select datname from pg_database');
      expect(rows.map((r) => r.datname)).toEqual(['postgres']);
      expect(await database.migrate()).toEqual([]);
    } finally {
      await database.stop();
    }
    expect(await readdir(join(dataDir, 'base'))).toEqual(['5']);
  }, 60_000);
});
