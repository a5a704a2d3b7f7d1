import type { MigrationObject } from '@mikro-orm/core';
import { Migration20261124190322 } from './20261124190322-initial-schema.js';
import { Migration20261124193004 } from './20261124193004-audit-trail.js';
import { Migration20261124193652 } from './20261124193652-outbox-inbox.js';
import { Migration20261124195601 } from './20261124195601-attendance.js';
import { Migration20261124200128 } from './20261124200128-recording.js';
import { Migration20261124200810 } from './20261124200810-reconciler-lease.js';
import { Migration20261126012235 } from './20261126012235-reconciler-indexes.js';

/**
 * Every migration, in order. `npm run migration:create` writes new ones; list them here,
 * and read them before committing: a generated diff must never drop what the database
 * enforces on its own (the audit trail's triggers).
 */
export const MIGRATIONS: MigrationObject[] = [
  { name: 'Migration20261124190322', class: Migration20261124190322 },
  { name: 'Migration20261124193004', class: Migration20261124193004 },
  { name: 'Migration20261124193652', class: Migration20261124193652 },
  { name: 'Migration20261124195601', class: Migration20261124195601 },
  { name: 'Migration20261124200128', class: Migration20261124200128 },
  { name: 'Migration20261124200810', class: Migration20261124200810 },
  { name: 'Migration20261126012235', class: Migration20261126012235 },
];
