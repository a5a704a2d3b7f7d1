import { Migration } from '@mikro-orm/migrations';

export class Migration20261124200128 extends Migration {
  override name = 'Migration20261124200128';

  override up(): void | Promise<void> {
    this.addSql(
      `alter table "consultation" add "recording_id" varchar(128) null, add "recording_status" varchar(16) null, add "recording_url" varchar(1024) null;`,
    );

    this.addSql(`alter table "participant" add "recording_consent_at" timestamptz null;`);
  }

  override down(): void | Promise<void> {
    this.addSql(
      `alter table "consultation" drop column "recording_id", drop column "recording_status", drop column "recording_url";`,
    );

    this.addSql(`alter table "participant" drop column "recording_consent_at";`);
  }
}
