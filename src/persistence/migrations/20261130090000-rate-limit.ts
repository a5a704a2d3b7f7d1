import { Migration } from '@mikro-orm/migrations';

/**
 * The rate limits' counts, shared by every copy of the service (rate-limit.ts): one row
 * per counted key, its points in the current window and when that window ends (epoch
 * milliseconds), the layout `rate-limiter-flexible`'s PostgreSQL store reads and writes.
 *
 * Unlogged: a count lives for a window of seconds, so it is not worth a WAL record, and a
 * transaction that writes only unlogged tables commits without waiting for a WAL flush.
 * The price is that a crash of PostgreSQL empties the table, which forgives the counts of
 * one window.
 */
export class Migration20261130090000 extends Migration {
  override name = 'Migration20261130090000';

  override up(): void | Promise<void> {
    this.addSql(
      `create unlogged table "rate_limit" ("key" text primary key, "points" integer not null default 0, "expire" bigint);`,
    );
  }

  override down(): void | Promise<void> {
    this.addSql(`drop table "rate_limit";`);
  }
}
