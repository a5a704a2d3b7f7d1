import { Migration } from '@mikro-orm/migrations';

export class Migration20261124193652 extends Migration {
  override name = 'Migration20261124193652';

  override up(): void | Promise<void> {
    this.addSql(
      `create table "inbox_message" ("event_id" varchar(256) not null, "topic" varchar(128) not null, "handled_at" timestamptz not null, primary key ("event_id"));`,
    );

    this.addSql(
      `create table "outbox_message" ("id" uuid not null, "seq" bigserial, "type" varchar(64) not null, "key" varchar(64) not null, "subject" varchar(64) not null, "clinic_id" varchar(64) not null, "payload" jsonb not null, "created_at" timestamptz not null, "sent_at" timestamptz null, "attempts" int not null default 0, "last_error" varchar(500) null, primary key ("id"));`,
    );
    this.addSql(
      `alter table "outbox_message" add constraint "outbox_message_seq_unique" unique ("seq");`,
    );
    this.addSql(
      `create index "outbox_message_pending_index" on "outbox_message" ("seq") where "sent_at" is null;`,
    );
  }

  override down(): void | Promise<void> {
    this.addSql(`drop table if exists "inbox_message" cascade;`);
    this.addSql(`drop table if exists "outbox_message" cascade;`);
  }
}
