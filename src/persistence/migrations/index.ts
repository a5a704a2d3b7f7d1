import type { MigrationObject } from '@mikro-orm/core';
import { Migration20261124190322 } from './20261124190322-initial-schema.js';

/** Every migration, in order. `npm run migration:create` writes new ones; list them here. */
export const MIGRATIONS: MigrationObject[] = [
  { name: 'Migration20261124190322', class: Migration20261124190322 },
];
