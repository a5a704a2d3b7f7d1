import { Migration } from '@mikro-orm/migrations';

/**
 * The keyset pages (history, audit trail, a consultation's latest issues) are ordered by
 * time and then id, but their indexes ended at the time: the order came whole from the
 * index only while PostgreSQL's statistics said the rows were many. On a table it had
 * not analyzed yet (a new database, autovacuum behind or off) it estimated one row and
 * chose to sort the owner's whole history for a page of 20, a cost that grew with every
 * consultation. With the id as the index's last column the index gives the page's order
 * by itself, and the plan reads a page whatever the statistics say.
 */
const REPLACED = [
  [
    'consultation',
    'consultation_clinic_id_doctor_id_scheduled_start',
    '"clinic_id", "doctor_id", "scheduled_start"',
    '',
  ],
  [
    'consultation',
    'consultation_clinic_id_patient_id_scheduled_start',
    '"clinic_id", "patient_id", "scheduled_start"',
    '',
  ],
  ['consultation', 'consultation_clinic_id_scheduled_start', '"clinic_id", "scheduled_start"', ''],
  ['audit_entry', 'audit_entry_clinic_id_at', '"clinic_id", "at"', ''],
  ['audit_entry', 'audit_entry_clinic_id_resource_id_at', '"clinic_id", "resource_id", "at"', ''],
  ['audit_entry', 'audit_entry_clinic_id_actor_id_at', '"clinic_id", "actor_id", "at"', ''],
  [
    'audit_entry',
    'audit_entry_target_clinic_id_at',
    '"target_clinic_id", "at"',
    ' where "target_clinic_id" is not null',
  ],
  [
    'technical_issue',
    'technical_issue_consultation_id_reported_at',
    '"consultation_id", "reported_at"',
    '',
  ],
] as const;

export class Migration20261129170000 extends Migration {
  override name = 'Migration20261129170000';

  override up(): void | Promise<void> {
    for (const [table, name, columns, where] of REPLACED) {
      this.addSql(`drop index "${name}_index";`);
      this.addSql(`create index "${name}_id_index" on "${table}" (${columns}, "id")${where};`);
    }
  }

  override down(): void | Promise<void> {
    for (const [table, name, columns, where] of REPLACED) {
      this.addSql(`drop index "${name}_id_index";`);
      this.addSql(`create index "${name}_index" on "${table}" (${columns})${where};`);
    }
  }
}
