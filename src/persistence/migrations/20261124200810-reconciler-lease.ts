import { Migration } from '@mikro-orm/migrations';

export class Migration20261124200810 extends Migration {
  override name = 'Migration20261124200810';

  override up(): void | Promise<void> {
    this.addSql(`alter table "consultation" add "reconciled_at" timestamptz null;`);
  }

  override down(): void | Promise<void> {
    this.addSql(`alter table "consultation" drop column "reconciled_at";`);
  }
}
