import type { MigrationObject } from '@mikro-orm/core';
import { Migration20261124190322 } from './20261124190322-initial-schema.js';
import { Migration20261124193004 } from './20261124193004-audit-trail.js';
import { Migration20261124193652 } from './20261124193652-outbox-inbox.js';
import { Migration20261124195601 } from './20261124195601-attendance.js';
import { Migration20261124200128 } from './20261124200128-recording.js';
import { Migration20261124200810 } from './20261124200810-reconciler-lease.js';
import { Migration20261126012235 } from './20261126012235-reconciler-indexes.js';
import { Migration20261127101500 } from './20261127101500-audit-target-clinic.js';
import { Migration20261128090000 } from './20261128090000-outbox-claims.js';
import { Migration20261128090100 } from './20261128090100-inbox-source.js';
import { Migration20261129060000 } from './20261129060000-idempotency-keys.js';
import { Migration20261129100000 } from './20261129100000-consultation-changes.js';
import { Migration20261129120000 } from './20261129120000-open-consultations.js';
import { Migration20261129150000 } from './20261129150000-unfinished-consultations.js';
import { Migration20261129160000 } from './20261129160000-lookups-by-owner.js';
import { Migration20261129170000 } from './20261129170000-keyset-order-indexes.js';
import { Migration20261130090000 } from './20261130090000-rate-limit.js';
import { Migration20261130100000 } from './20261130100000-audit-seals.js';
import { Migration20261130110000 } from './20261130110000-outbox-trace-context.js';

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
  { name: 'Migration20261127101500', class: Migration20261127101500 },
  { name: 'Migration20261128090000', class: Migration20261128090000 },
  { name: 'Migration20261128090100', class: Migration20261128090100 },
  { name: 'Migration20261129060000', class: Migration20261129060000 },
  { name: 'Migration20261129100000', class: Migration20261129100000 },
  { name: 'Migration20261129120000', class: Migration20261129120000 },
  { name: 'Migration20261129150000', class: Migration20261129150000 },
  { name: 'Migration20261129160000', class: Migration20261129160000 },
  { name: 'Migration20261129170000', class: Migration20261129170000 },
  { name: 'Migration20261130090000', class: Migration20261130090000 },
  { name: 'Migration20261130100000', class: Migration20261130100000 },
  { name: 'Migration20261130110000', class: Migration20261130110000 },
];
