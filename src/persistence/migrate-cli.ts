/**
 * `npm run migrate`: applies pending migrations as DATABASE_MIGRATION_URL's role (else
 * DATABASE_URL's, else to the embedded engine); when the two URLs name different roles,
 * then grants DATABASE_URL's role what the service needs (see grants.ts).
 * `npm run migrate -- grant <role>`: only the grants, to a role named here.
 * `npm run migration:create`: writes a migration for the difference between the entities
 * and the database; add it to migrations/index.ts.
 */
import { MikroORM } from '@mikro-orm/postgresql';
import { loadConfig } from '../config.js';
import { createLogger } from '../logger.js';
import { migrateAsOwner, openDatabase, ormOptions } from './database.js';
import { grantServiceRole } from './grants.js';

const [command = 'up', argument] = process.argv.slice(2);
const config = loadConfig();
const logger = createLogger(config.logLevel);
/** The owner's URL: what migrations and grants run as. Undefined: the embedded engine. */
const ownerUrl = config.database.migrationUrl ?? config.database.url;

/** Runs `work` on an ORM connected as the owner (or on the embedded engine). */
async function asOwner<T>(work: (orm: MikroORM) => Promise<T>): Promise<T> {
  if (ownerUrl === undefined) {
    const database = await openDatabase(config, logger);
    try {
      return await work(database.orm);
    } finally {
      await database.stop();
    }
  }
  const orm = await MikroORM.init(ormOptions(ownerUrl, 1, logger));
  try {
    return await work(orm);
  } finally {
    await orm.close(true);
  }
}

try {
  if (command === 'up') {
    const applied =
      ownerUrl === undefined
        ? await asOwner(async (orm) => (await orm.migrator.up()).map((m) => m.name))
        : await migrateAsOwner(ownerUrl, config.database.url, logger);
    logger.info({ applied }, applied.length ? 'migrations applied' : 'database is up to date');
  } else if (command === 'grant') {
    if (!argument || ownerUrl === undefined) {
      logger.error(
        'usage: npm run migrate -- grant <role> (with DATABASE_MIGRATION_URL or DATABASE_URL)',
      );
      process.exitCode = 2;
    } else {
      const granted = await asOwner((orm) => grantServiceRole(orm, argument));
      logger.info(granted, 'privileges granted');
    }
  } else if (command === 'create') {
    await asOwner(async (orm) => {
      const result = await orm.migrator.create();
      if (result.diff.up.length === 0) logger.info('no changes: no migration written');
      else
        logger.info({ file: result.fileName }, 'migration written: add it to migrations/index.ts');
    });
  } else {
    logger.error({ command }, 'unknown command: use "up", "grant <role>" or "create"');
    process.exitCode = 2;
  }
} catch (error) {
  logger.error({ err: error }, `${command} failed`);
  process.exitCode = 1;
}
