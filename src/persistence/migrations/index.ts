import type { MigrationObject } from '@mikro-orm/core';
import { Migration20261124190322 } from './20261124190322-initial-schema.js';
import { Migration20261124193004 } from './20261124193004-audit-trail.js';

/** Every migration, in order. `npm run migration:create` writes new ones; list them here. */
export const MIGRATIONS: MigrationObject[] = [
  { name: 'Migration20261124190322', class: Migration20261124190322 },
  { name: 'Migration20261124193004', class: Migration20261124193004 },
];
