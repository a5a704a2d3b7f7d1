import { Migration } from '@mikro-orm/migrations';

/**
 * The trace context of the call that wrote an event (W3C `traceparent`, null when it was
 * not traced), so that the relay's publish, and the consumers of the record, continue
 * that call's trace (tracing.ts).
 */
export class Migration20261130110000 extends Migration {
  override name = 'Migration20261130110000';

  override up(): void | Promise<void> {
    this.addSql(`alter table "outbox_message" add column "trace_parent" varchar(55) null;`);
  }

  override down(): void | Promise<void> {
    this.addSql(`alter table "outbox_message" drop column "trace_parent";`);
  }
}
