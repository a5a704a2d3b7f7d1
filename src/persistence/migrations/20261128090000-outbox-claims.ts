import { Migration } from '@mikro-orm/migrations';

/**
 * The relay's claims: a copy of the service claims the pending events of some record keys
 * (`claimed_by` = a token of that claim, `claimed_until` = when it lapses unless renewed)
 * in one short statement, publishes them outside any transaction, then marks them sent by
 * id and token. A claim of a copy that died lapses at `claimed_until`. The index serves the
 * claim's per-key look-ups (a key's earliest pending event, its pending events in order).
 */
export class Migration20261128090000 extends Migration {
  override name = 'Migration20261128090000';

  override up(): void | Promise<void> {
    this.addSql(
      `alter table "outbox_message" add column "claimed_by" uuid null, add column "claimed_until" timestamptz null;`,
    );
    this.addSql(
      `create index "outbox_message_pending_key_index" on "outbox_message" ("key", "seq") where "sent_at" is null;`,
    );
  }

  override down(): void | Promise<void> {
    this.addSql(`drop index "outbox_message_pending_key_index";`);
    this.addSql(
      `alter table "outbox_message" drop column "claimed_by", drop column "claimed_until";`,
    );
  }
}
