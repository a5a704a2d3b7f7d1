import { Migration } from '@mikro-orm/migrations';

export class Migration20261124195601 extends Migration {
  override name = 'Migration20261124195601';

  override up(): void | Promise<void> {
    this.addSql(
      `create table "provider_connection" ("id" uuid not null, "consultation_id" uuid not null, "participant_id" uuid not null, "clinic_id" varchar(64) not null, "provider" varchar(16) not null, "connection_id" varchar(128) not null, "joined_at" timestamptz null, "left_at" timestamptz null, "reason" varchar(32) null, primary key ("id"));`,
    );
    this.addSql(
      `alter table "provider_connection" add constraint "provider_connection_provider_connection_id_unique" unique ("provider", "connection_id");`,
    );

    this.addSql(
      `create index "consultation_provider_provider_session_id_index" on "consultation" ("provider", "provider_session_id");`,
    );

    this.addSql(
      `alter table "participant" add "connected" boolean not null default false, add "last_disconnect_reason" varchar(32) null;`,
    );

    this.addSql(
      `alter table "provider_connection" add constraint "provider_connection_consultation_id_foreign" foreign key ("consultation_id") references "consultation" ("id") on delete cascade;`,
    );
    this.addSql(
      `alter table "provider_connection" add constraint "provider_connection_participant_id_foreign" foreign key ("participant_id") references "participant" ("id") on delete cascade;`,
    );
  }

  override down(): void | Promise<void> {
    this.addSql(`drop table if exists "provider_connection" cascade;`);

    this.addSql(`drop index "consultation_provider_provider_session_id_index";`);

    this.addSql(
      `alter table "participant" drop column "connected", drop column "last_disconnect_reason";`,
    );
  }
}
