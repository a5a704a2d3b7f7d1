import { Migration } from '@mikro-orm/migrations';

/**
 * The sweeper looks for consultations to close among those not finished yet: this index
 * holds those alone, in the order the sweeper takes them (scheduled end), so a pass costs
 * what is still open, not the clinic's whole history, which it read before.
 */
export class Migration20261129150000 extends Migration {
  override name = 'Migration20261129150000';

  override up(): void | Promise<void> {
    this.addSql(
      `create index "consultation_unfinished_index" on "consultation" ("scheduled_end") where "status" in ('scheduled', 'waiting', 'in_progress');`,
    );
  }

  override down(): void | Promise<void> {
    this.addSql(`drop index "consultation_unfinished_index";`);
  }
}
