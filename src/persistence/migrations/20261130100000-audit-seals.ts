import { Migration } from '@mikro-orm/migrations';

/**
 * Seals over the audit trail (audit-seals.ts): every audit entry records the transaction
 * that wrote it (`tx`, in the order PostgreSQL hands out transaction ids), and
 * `audit_seal` holds a chain of seals, each a digest of the entries of a range of those
 * transactions and the hash of the seal before it. Both tables refuse UPDATE, DELETE and
 * TRUNCATE like the trail; what a superuser can still do anyway, the seals detect.
 *
 * Entries written before this migration read `tx` 0, so the first seal covers them all.
 */
export class Migration20261130100000 extends Migration {
  override name = 'Migration20261130100000';

  override up(): void | Promise<void> {
    // A constant default first (no rewrite of the existing rows), then the real one.
    this.addSql(`alter table "audit_entry" add column "tx" xid8 not null default '0';`);
    this.addSql(`alter table "audit_entry" alter column "tx" set default pg_current_xact_id();`);
    this.addSql(`create index "audit_entry_tx_id_index" on "audit_entry" ("tx", "id");`);
    this.addSql(
      `create table "audit_seal" ("seq" bigint primary key, "tx_from" xid8 not null, "tx_to" xid8 not null, "entries" integer not null, "digest" bytea not null, "sealed_at" timestamptz not null, "previous" bytea not null, "hash" bytea not null);`,
    );
    this.addSql(
      `create trigger audit_seal_no_update_or_delete before update or delete on "audit_seal" for each row execute function audit_entry_append_only();`,
    );
    this.addSql(
      `create trigger audit_seal_no_truncate before truncate on "audit_seal" for each statement execute function audit_entry_append_only();`,
    );
  }

  override down(): void | Promise<void> {
    this.addSql(`drop table "audit_seal";`);
    this.addSql(`drop index "audit_entry_tx_id_index";`);
    this.addSql(`alter table "audit_entry" drop column "tx";`);
  }
}
