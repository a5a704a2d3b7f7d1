import { createHash } from 'node:crypto';
import { copyFile, mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { MIGRATIONS } from './migrations/index.js';

/** What a template holds besides the migrations: changed when its making changes. */
const TEMPLATE_LAYOUT = 'the postgres database only';

/**
 * A new embedded data folder starts as a copy of a template: a data folder whose initdb
 * has run and every migration is applied, made once per engine version and migration set
 * and kept in `node_modules/.cache/video-service/`. PGlite's initdb alone takes seconds
 * (it runs in WebAssembly); copying its folder takes tens of milliseconds, and the
 * migrations then have nothing left to do.
 */
export interface EmbeddedTemplates {
  /**
   * Fills `dataDir` from the template when it is new (holds no database yet), making the
   * template first if there is none, with `build`: it must leave a migrated, closed data
   * folder at the path it is given. Answers how the folder was prepared.
   */
  prepare(
    dataDir: string,
    build: (templateDir: string) => Promise<void>,
  ): Promise<'existing' | 'copied' | 'unavailable'>;
}

export function embeddedTemplates(
  logger: Logger,
  /** Where templates are kept; by default `.cache/video-service` in the engine's node_modules. */
  cacheDir?: string,
): EmbeddedTemplates {
  return {
    async prepare(dataDir, build) {
      // A folder with anything in it is left as it is: the engine decides what it holds.
      const entries = await readdir(dataDir).catch(() => []);
      if (entries.length > 0) return 'existing';
      // Copied beside it, then moved into place in one rename (over the empty folder).
      const staging = `${dataDir}.copying-${process.pid}`;
      try {
        const template = await templateDir(cacheDir);
        if (!(await exists(join(template, 'PG_VERSION')))) {
          const started = Date.now();
          await makeTemplate(template, build);
          logger.info(
            { template, ms: Date.now() - started },
            'embedded database: made the template new data folders start from',
          );
        }
        await mkdir(dirname(dataDir), { recursive: true });
        await copyFolder(template, staging);
        await rename(staging, dataDir);
        return 'copied';
      } catch (error) {
        // A read-only or missing cache costs only speed: initdb runs as before.
        logger.warn({ err: error }, 'embedded database: no template; creating the folder afresh');
        await rm(staging, { recursive: true, force: true });
        return 'unavailable';
      }
    },
  };
}

/** The template's folder: named after the engine's version, its layout and its migrations. */
async function templateDir(cacheDir: string | undefined): Promise<string> {
  // The node_modules folder the engine was installed into (by `npm ci`, afresh each time).
  const engineEntry = fileURLToPath(import.meta.resolve('@electric-sql/pglite'));
  const marker = `${sep}node_modules${sep}`;
  const modules = engineEntry.slice(0, engineEntry.lastIndexOf(marker) + marker.length);
  const engine = JSON.parse(
    await readFile(join(modules, '@electric-sql', 'pglite', 'package.json'), 'utf8'),
  ) as { version: string };
  const key = createHash('sha256')
    .update(TEMPLATE_LAYOUT)
    .update(engine.version)
    .update(MIGRATIONS.map((m) => m.name).join(','))
    .digest('hex')
    .slice(0, 16);
  const cache = cacheDir ?? join(modules, '.cache', 'video-service');
  return join(cache, `pglite-${engine.version}-${key}`);
}

/**
 * Builds the template in a folder of its own and moves it into place in one rename, so
 * that copies starting at once never see half of one; templates of other versions go.
 */
async function makeTemplate(template: string, build: (dir: string) => Promise<void>) {
  const parent = dirname(template);
  await mkdir(parent, { recursive: true });
  const building = `${template}.building-${process.pid}-${Date.now()}`;
  try {
    await build(building);
    await rename(building, template);
  } catch (error) {
    await rm(building, { recursive: true, force: true });
    // Another process finished first: its template serves as well.
    if (await exists(join(template, 'PG_VERSION'))) return;
    throw error;
  }
  for (const name of await readdir(parent)) {
    const path = join(parent, name);
    if (path !== template && name.startsWith('pglite-') && !name.includes('.building-')) {
      await rm(path, { recursive: true, force: true });
    }
  }
}

/**
 * Copies a data folder: its folders first, then all its files at once. It holds about 430
 * small files, which `fs.cp` copies one after the other; all at once they take the thread
 * pool's time only. Not `cpSync`, which is as fast but
 * stops the event loop for the whole copy, and other copies of the service may be serving
 * in this process (the tests start several).
 */
async function copyFolder(from: string, to: string): Promise<void> {
  const entries = await readdir(from, { recursive: true, withFileTypes: true });
  const target = (entry: (typeof entries)[number]) =>
    join(to, relative(from, join(entry.parentPath, entry.name)));
  await mkdir(to, { recursive: true });
  for (const entry of entries) {
    if (entry.isDirectory()) await mkdir(target(entry), { recursive: true });
  }
  await Promise.all(
    entries
      .filter((entry) => entry.isFile())
      .map((entry) => copyFile(join(entry.parentPath, entry.name), target(entry))),
  );
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
