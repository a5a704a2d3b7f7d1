import { Migration } from '@mikro-orm/migrations';

/**
 * Rows looked up by what they belong to had no index to be found by, so each lookup read
 * the table whole, which grows with every consultation ever held: a participant's
 * connections (recomputed on every provider webhook and reconciler repair), a
 * consultation's connections (the reconciler's repair), and a consultation's latest
 * technical issues (every WatchConsultation view).
 */
export class Migration20261129160000 extends Migration {
  override name = 'Migration20261129160000';

  override up(): void | Promise<void> {
    this.addSql(
      `create index "provider_connection_participant_id_index" on "provider_connection" ("participant_id");`,
    );
    this.addSql(
      `create index "provider_connection_consultation_id_index" on "provider_connection" ("consultation_id");`,
    );
    this.addSql(
      `create index "technical_issue_consultation_id_reported_at_index" on "technical_issue" ("consultation_id", "reported_at");`,
    );
  }

  override down(): void | Promise<void> {
    this.addSql(`drop index "technical_issue_consultation_id_reported_at_index";`);
    this.addSql(`drop index "provider_connection_consultation_id_index";`);
    this.addSql(`drop index "provider_connection_participant_id_index";`);
  }
}
