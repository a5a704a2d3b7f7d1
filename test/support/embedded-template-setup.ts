import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { openDatabase } from '../../src/persistence/database.js';

/**
 * Makes the embedded engine's template once, before any test file starts (see
 * src/persistence/embedded-template.ts): the files that start the embedded engine then
 * copy it, instead of the first ones each running initdb and every migration at once.
 */
export default async function setup() {
  const dataDir = await mkdtemp(join(tmpdir(), 'video-service-template-'));
  try {
    const config = loadConfig({ NODE_ENV: 'test', DATA_DIR: dataDir, MIGRATE_ON_START: 'true' });
    const database = await openDatabase(config, createLogger('silent'));
    await database.stop();
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
}
