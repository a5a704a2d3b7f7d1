import { Migration } from '@mikro-orm/migrations';

/**
 * The waiting room's queries (a patient's place in the queue, ListWaitingRoom and its
 * stream) look only at consultations still open: this index holds those alone, so they
 * cost the same in a clinic's tenth year as on its first day. Before it they walked
 * every patient the clinic ever checked in (participant_clinic_id_checked_in_at_index)
 * and threw the closed ones away.
 */
export class Migration20261129120000 extends Migration {
  override name = 'Migration20261129120000';

  override up(): void | Promise<void> {
    this.addSql(
      `create index "consultation_open_index" on "consultation" ("clinic_id", "doctor_id") where "status" in ('waiting', 'in_progress');`,
    );
  }

  override down(): void | Promise<void> {
    this.addSql(`drop index "consultation_open_index";`);
  }
}
