import { Migration } from '@mikro-orm/migrations';

export class Migration20261126012235 extends Migration {
  override name = 'Migration20261126012235';

  override up(): void | Promise<void> {
    this.addSql(
      `create index "consultation_in_progress_index" on "consultation" ("reconciled_at") where "status" = 'in_progress';`,
    );

    this.addSql(
      `create index "provider_connection_open_index" on "provider_connection" ("consultation_id") where "left_at" is null;`,
    );
  }

  override down(): void | Promise<void> {
    this.addSql(`drop index "consultation_in_progress_index";`);

    this.addSql(`drop index "provider_connection_open_index";`);
  }
}
