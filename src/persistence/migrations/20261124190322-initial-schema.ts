import { Migration } from '@mikro-orm/migrations';

export class Migration20261124190322 extends Migration {
  override name = 'Migration20261124190322';

  override up(): void | Promise<void> {
    this.addSql(
      `create table "consultation" ("id" uuid not null, "clinic_id" varchar(64) not null, "appointment_id" varchar(64) not null, "doctor_id" varchar(128) not null, "patient_id" varchar(128) not null, "scheduled_start" timestamptz not null, "scheduled_end" timestamptz not null, "status" varchar(16) not null, "provider" varchar(16) null, "provider_session_id" varchar(128) null, "started_at" timestamptz null, "ended_at" timestamptz null, "duration_seconds" int null, "end_reason" varchar(16) null, "version" int not null default 1, "created_at" timestamptz not null, "updated_at" timestamptz not null, primary key ("id"));`,
    );
    this.addSql(
      `create index "consultation_clinic_id_doctor_id_scheduled_start_index" on "consultation" ("clinic_id", "doctor_id", "scheduled_start");`,
    );
    this.addSql(
      `create index "consultation_clinic_id_patient_id_scheduled_start_index" on "consultation" ("clinic_id", "patient_id", "scheduled_start");`,
    );
    this.addSql(
      `create index "consultation_clinic_id_scheduled_start_index" on "consultation" ("clinic_id", "scheduled_start");`,
    );
    this.addSql(
      `alter table "consultation" add constraint "consultation_clinic_id_appointment_id_unique" unique ("clinic_id", "appointment_id");`,
    );

    this.addSql(
      `create table "participant" ("id" uuid not null, "consultation_id" uuid not null, "clinic_id" varchar(64) not null, "user_id" varchar(128) not null, "role" varchar(16) not null, "checked_in_at" timestamptz null, "admitted_at" timestamptz null, "first_token_at" timestamptz null, "first_joined_at" timestamptz null, "last_left_at" timestamptz null, "connected_seconds" int not null default 0, primary key ("id"));`,
    );
    this.addSql(
      `create index "participant_clinic_id_checked_in_at_index" on "participant" ("clinic_id", "checked_in_at");`,
    );
    this.addSql(
      `alter table "participant" add constraint "participant_consultation_id_role_unique" unique ("consultation_id", "role");`,
    );

    this.addSql(
      `create table "shared_image" ("id" uuid not null, "consultation_id" uuid not null, "clinic_id" varchar(64) not null, "shared_by" varchar(128) not null, "content_type" varchar(64) not null, "size_bytes" int not null, "sha256" varchar(64) not null, "content" bytea not null, "shared_at" timestamptz not null, primary key ("id"));`,
    );

    this.addSql(
      `create table "technical_issue" ("id" uuid not null, "consultation_id" uuid not null, "clinic_id" varchar(64) not null, "reporter_id" varchar(128) not null, "reporter_role" varchar(16) not null, "issue_type" varchar(16) not null, "description" text not null, "reported_at" timestamptz not null, primary key ("id"));`,
    );

    this.addSql(
      `alter table "participant" add constraint "participant_consultation_id_foreign" foreign key ("consultation_id") references "consultation" ("id") on delete cascade;`,
    );

    this.addSql(
      `alter table "shared_image" add constraint "shared_image_consultation_id_foreign" foreign key ("consultation_id") references "consultation" ("id") on delete cascade;`,
    );

    this.addSql(
      `alter table "technical_issue" add constraint "technical_issue_consultation_id_foreign" foreign key ("consultation_id") references "consultation" ("id") on delete cascade;`,
    );
  }

  override down(): void | Promise<void> {
    this.addSql(`alter table "participant" drop constraint "participant_consultation_id_foreign";`);
    this.addSql(
      `alter table "shared_image" drop constraint "shared_image_consultation_id_foreign";`,
    );
    this.addSql(
      `alter table "technical_issue" drop constraint "technical_issue_consultation_id_foreign";`,
    );

    this.addSql(`drop table if exists "consultation" cascade;`);
    this.addSql(`drop table if exists "participant" cascade;`);
    this.addSql(`drop table if exists "shared_image" cascade;`);
    this.addSql(`drop table if exists "technical_issue" cascade;`);
  }
}
