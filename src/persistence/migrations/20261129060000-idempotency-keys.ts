import { Migration } from '@mikro-orm/migrations';

/**
 * A client's idempotency key on technical issues and shared images: one report or image
 * per (consultation, user, key), so that a retried call finds the first one.
 */
export class Migration20261129060000 extends Migration {
  override name = 'Migration20261129060000';

  override up(): void | Promise<void> {
    this.addSql(`alter table "technical_issue" add column "idempotency_key" varchar(64) null;`);
    this.addSql(
      `create unique index "technical_issue_idempotency_key_unique" on "technical_issue" ("consultation_id", "reporter_id", "idempotency_key") where "idempotency_key" is not null;`,
    );
    this.addSql(`alter table "shared_image" add column "idempotency_key" varchar(64) null;`);
    this.addSql(
      `create unique index "shared_image_idempotency_key_unique" on "shared_image" ("consultation_id", "shared_by", "idempotency_key") where "idempotency_key" is not null;`,
    );
  }

  override down(): void | Promise<void> {
    this.addSql(`drop index "shared_image_idempotency_key_unique";`);
    this.addSql(`alter table "shared_image" drop column "idempotency_key";`);
    this.addSql(`drop index "technical_issue_idempotency_key_unique";`);
    this.addSql(`alter table "technical_issue" drop column "idempotency_key";`);
  }
}
