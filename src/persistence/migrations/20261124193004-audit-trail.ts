import { Migration } from '@mikro-orm/migrations';

export class Migration20261124193004 extends Migration {
  override name = 'Migration20261124193004';

  override up(): void | Promise<void> {
    this.addSql(
      `create table "audit_entry" ("id" uuid not null, "at" timestamptz not null, "actor_id" varchar(128) not null, "actor_role" varchar(32) not null, "clinic_id" varchar(64) not null, "action" varchar(64) not null, "resource_type" varchar(32) not null, "resource_id" varchar(128) null, "outcome" varchar(32) not null, "request_id" varchar(64) null, "client_address" varchar(64) null, "user_agent" varchar(256) null, primary key ("id"));`,
    );
    this.addSql(
      `create index "audit_entry_clinic_id_at_index" on "audit_entry" ("clinic_id", "at");`,
    );
    this.addSql(
      `create index "audit_entry_clinic_id_resource_id_at_index" on "audit_entry" ("clinic_id", "resource_id", "at");`,
    );
    this.addSql(
      `create index "audit_entry_clinic_id_actor_id_at_index" on "audit_entry" ("clinic_id", "actor_id", "at");`,
    );

    // HIPAA audit controls: the trail is append-only, enforced by the database itself so
    // that no code path (nor a careless console session) can rewrite history.
    this.addSql(`create function audit_entry_append_only() returns trigger language plpgsql as $$
      begin
        raise exception 'audit_entry is append-only: % refused', tg_op using errcode = 'insufficient_privilege';
      end;
    $$;`);
    this.addSql(
      `create trigger audit_entry_no_update_or_delete before update or delete on "audit_entry" for each row execute function audit_entry_append_only();`,
    );
    this.addSql(
      `create trigger audit_entry_no_truncate before truncate on "audit_entry" for each statement execute function audit_entry_append_only();`,
    );
  }

  override down(): void | Promise<void> {
    this.addSql(`drop table if exists "audit_entry" cascade;`);
    this.addSql(`drop function if exists audit_entry_append_only();`);
  }
}
