/**
 * `npm run migrate`: applies pending migrations to DATABASE_URL (or the embedded engine).
 * `npm run migration:create`: writes a migration for the difference between the entities
 * and the database; add it to migrations/index.ts.
 */
import { loadConfig } from '../config.js';
import { createLogger } from '../logger.js';
import { openDatabase } from './database.js';

const command = process.argv[2] ?? 'up';
const config = loadConfig();
const logger = createLogger(config.logLevel);
const database = await openDatabase(config, logger);
try {
  if (command === 'up') {
    const applied = await database.migrate();
    logger.info({ applied }, applied.length ? 'migrations applied' : 'database is up to date');
  } else if (command === 'create') {
    const result = await database.orm.migrator.create();
    if (result.diff.up.length === 0) logger.info('no changes: no migration written');
    else logger.info({ file: result.fileName }, 'migration written: add it to migrations/index.ts');
  } else {
    logger.error({ command }, 'unknown command: use "up" or "create"');
    process.exitCode = 2;
  }
} finally {
  await database.stop();
}
