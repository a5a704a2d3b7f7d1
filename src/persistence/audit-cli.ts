/**
 * The audit trail's seals from the command line (audit-seals.ts, audit-verification.ts),
 * on DATABASE_URL's database, else the embedded engine's in DATA_DIR (with the service
 * stopped):
 *
 * - `npm run audit:verify`: checks the trail against its seals and prints one JSON line:
 *   the seals and entries verified, the entries not sealed yet, and the chain head (the
 *   last seal's number and hash) to compare with one kept elsewhere. Exits 1 at the first
 *   broken link, naming it.
 * - `npm run audit:export -- <file>`: writes the sealed trail to `<file>` as JSON lines,
 *   for an auditor to verify away from the database.
 * - `npm run audit:verify -- --file <file>`: verifies such an export, with no database.
 */

import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { createInterface } from 'node:readline';
import pg from 'pg';
import { loadConfig } from '../config.js';
import { createLogger } from '../logger.js';
import type { Queryable } from './audit-seals.js';
import {
  type AuditVerification,
  exportAuditTrail,
  verifyAuditExport,
  verifyAuditTrail,
} from './audit-verification.js';
import { openDatabase } from './database.js';

const [command, ...args] = process.argv.slice(2);
const config = loadConfig();
const logger = createLogger(config.logLevel);

/** Runs `work` on the configured database. */
async function onDatabase<T>(work: (db: Queryable) => Promise<T>): Promise<T> {
  if (config.database.url) {
    const pool = new pg.Pool({ connectionString: config.database.url, max: 1 });
    try {
      return await work(pool);
    } finally {
      await pool.end();
    }
  }
  const database = await openDatabase(config, logger);
  try {
    return await work(database.pool());
  } finally {
    await database.stop();
  }
}

async function verify(): Promise<void> {
  const started = performance.now();
  const file = args[0] === '--file' ? args[1] : undefined;
  if (args[0] === '--file' && !file) throw new UsageError();
  const verification: AuditVerification = file
    ? await verifyAuditExport(createInterface({ input: createReadStream(file) }))
    : await onDatabase(verifyAuditTrail);
  const ms = Math.round(performance.now() - started);
  console.log(JSON.stringify({ ...verification, ms }));
  if (verification.broken) {
    logger.error(verification.broken, 'the audit trail was altered');
    process.exitCode = 1;
  }
}

async function exportTo(file: string | undefined): Promise<void> {
  if (!file) throw new UsageError();
  const out = createWriteStream(file);
  let lines = 0;
  await onDatabase(async (db) => {
    for await (const line of exportAuditTrail(db)) {
      lines++;
      if (!out.write(`${line}\n`)) await once(out, 'drain');
    }
  });
  out.end();
  await once(out, 'finish');
  logger.info({ file, lines }, 'sealed audit trail exported');
}

class UsageError extends Error {
  constructor() {
    super('usage: npm run audit:verify [-- --file <export>] | npm run audit:export -- <file>');
  }
}

try {
  if (command === 'verify') await verify();
  else if (command === 'export') await exportTo(args[0]);
  else throw new UsageError();
} catch (error) {
  if (error instanceof UsageError) logger.error(error.message);
  else logger.error({ err: error }, `audit ${command} failed`);
  process.exitCode = 2;
}
