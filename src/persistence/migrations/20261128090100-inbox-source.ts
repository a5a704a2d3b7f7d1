import { Migration } from '@mikro-orm/migrations';

/**
 * The inbox keyed by (source, event id), as CloudEvents identifies an event: two systems
 * may use the same id for different events. Entries recorded before this migration did not
 * keep their source: provider reports (topic `webhook:<provider>`) get that topic, which
 * is the source they are recorded with from now on; appointment events get '' (unknown),
 * which the consumer treats as matching any source, so an event handled before the
 * migration is still recognised when it is delivered again.
 */
export class Migration20261128090100 extends Migration {
  override name = 'Migration20261128090100';

  override up(): void | Promise<void> {
    this.addSql(
      `alter table "inbox_message" add column "source" varchar(256) not null default '';`,
    );
    this.addSql(`update "inbox_message" set "source" = "topic" where "topic" like 'webhook:%';`);
    this.addSql(`alter table "inbox_message" alter column "source" drop default;`);
    this.addSql(`alter table "inbox_message" drop constraint "inbox_message_pkey";`);
    this.addSql(
      `alter table "inbox_message" add constraint "inbox_message_pkey" primary key ("source", "event_id");`,
    );
  }

  override down(): void | Promise<void> {
    // Keyed by id alone again: of events that share an id, the first source's entry stays.
    this.addSql(
      `delete from "inbox_message" a using "inbox_message" b where a."event_id" = b."event_id" and a."source" > b."source";`,
    );
    this.addSql(`alter table "inbox_message" drop constraint "inbox_message_pkey";`);
    this.addSql(`alter table "inbox_message" drop column "source";`);
    this.addSql(
      `alter table "inbox_message" add constraint "inbox_message_pkey" primary key ("event_id");`,
    );
  }
}
