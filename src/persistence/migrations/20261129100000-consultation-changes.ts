import { Migration } from '@mikro-orm/migrations';

/**
 * Every committed change of a consultation (a new version) is announced on the `consultation_changed`
 * channel (LISTEN/NOTIFY): its id, clinic, doctor and new version, as JSON. NOTIFY inside
 * the changing transaction is delivered only if, and when, it commits (`at`, the time of
 * the change in ms, lets the service measure how long delivery took); every path that
 * changes a consultation (use cases, sweeper, provider reports) is covered by the trigger.
 * The watch streams of every copy of the service follow it.
 */
export class Migration20261129100000 extends Migration {
  override name = 'Migration20261129100000';

  override up(): void | Promise<void> {
    this.addSql(`create function "announce_consultation_change"() returns trigger
      language plpgsql as $$
      begin
        perform pg_notify('consultation_changed', json_build_object(
          'id', new.id, 'clinicId', new.clinic_id, 'doctorId', new.doctor_id,
          'version', new.version,
          'at', (extract(epoch from clock_timestamp()) * 1000)::bigint)::text);
        return null;
      end $$;`);
    this.addSql(`create trigger "consultation_created" after insert on "consultation"
      for each row execute function "announce_consultation_change"();`);
    // Bookkeeping that leaves the version alone (the reconciler's timestamp) is no change.
    this.addSql(`create trigger "consultation_changed" after update on "consultation"
      for each row when (old.version is distinct from new.version)
      execute function "announce_consultation_change"();`);
  }

  override down(): void | Promise<void> {
    this.addSql(`drop trigger "consultation_changed" on "consultation";`);
    this.addSql(`drop trigger "consultation_created" on "consultation";`);
    this.addSql(`drop function "announce_consultation_change"();`);
  }
}
