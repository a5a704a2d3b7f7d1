import { Migration } from '@mikro-orm/migrations';

/**
 * The clinic that owns the consultation of a refused attempt, so that an attempt from
 * another clinic shows in the owner's audit trail too. Adding a nullable column rewrites
 * no row, so the append-only triggers are not involved.
 */
export class Migration20261127101500 extends Migration {
  override name = 'Migration20261127101500';

  override up(): void | Promise<void> {
    this.addSql(`alter table "audit_entry" add column "target_clinic_id" varchar(64) null;`);
    this.addSql(
      `create index "audit_entry_target_clinic_id_at_index" on "audit_entry" ("target_clinic_id", "at") where "target_clinic_id" is not null;`,
    );
  }

  override down(): void | Promise<void> {
    this.addSql(`drop index "audit_entry_target_clinic_id_at_index";`);
    this.addSql(`alter table "audit_entry" drop column "target_clinic_id";`);
  }
}
