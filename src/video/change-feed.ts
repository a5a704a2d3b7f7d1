import type { Logger } from 'pino';
import type { Notifications } from '../persistence/notifications.js';

/** A committed change of a consultation, as the database announced it (see the migration). */
export interface ConsultationChange {
  readonly id: string;
  readonly clinicId: string;
  readonly doctorId: string;
  readonly version: number;
  /** When the database made the change (ms since the epoch, its clock). */
  readonly at: number;
}

/** What a watcher is told: a change of what it watches, or that it may have missed some. */
export interface ChangeListener {
  change(change: ConsultationChange): void;
  /** Changes may have been lost (the listening connection was replaced): read again. */
  resync(): void;
}

/** The changes of the whole database, fanned out in this process to the streams that watch. */
export interface ChangeFeed {
  /** Listens to one consultation's changes until the answered function is called. */
  watchConsultation(consultationId: string, listener: ChangeListener): () => void;
  /** Listens to the changes of every consultation of a clinic. */
  watchClinic(clinicId: string, listener: ChangeListener): () => void;
  /** Listens to the changes of every consultation of one doctor of a clinic. */
  watchDoctor(clinicId: string, doctorId: string, listener: ChangeListener): () => void;
}

export const CONSULTATION_CHANNEL = 'consultation_changed';

/**
 * One LISTEN per copy of the service, however many streams watch: each notification is
 * handed to the watchers of its consultation, a resync to every watcher.
 */
export async function startChangeFeed(
  notifications: Notifications,
  logger: Logger,
): Promise<ChangeFeed> {
  const byConsultation = new Map<string, Set<ChangeListener>>();
  const byClinic = new Map<string, Set<ChangeListener>>();
  const byDoctor = new Map<string, Set<ChangeListener>>();
  const doctorKey = (clinicId: string, doctorId: string) => `${clinicId}\u0000${doctorId}`;
  const everyone = () =>
    [...byConsultation.values(), ...byClinic.values(), ...byDoctor.values()].flatMap((set) => [
      ...set,
    ]);
  /** Adds a listener under a key; answers how to remove it. */
  const add = (map: Map<string, Set<ChangeListener>>, key: string, listener: ChangeListener) => {
    const set = map.get(key) ?? new Set<ChangeListener>();
    map.set(key, set);
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && map.get(key) === set) map.delete(key);
    };
  };
  await notifications.listen(CONSULTATION_CHANNEL, {
    notify(payload) {
      let change: ConsultationChange;
      try {
        change = JSON.parse(payload) as ConsultationChange;
      } catch (error) {
        logger.warn({ err: error }, 'change feed: a notification that is not JSON');
        return;
      }
      for (const listener of byConsultation.get(change.id) ?? []) listener.change(change);
      for (const listener of byClinic.get(change.clinicId) ?? []) listener.change(change);
      const doctor = byDoctor.get(doctorKey(change.clinicId, change.doctorId));
      for (const listener of doctor ?? []) listener.change(change);
    },
    resync() {
      for (const listener of everyone()) listener.resync();
    },
  });
  return {
    watchConsultation: (consultationId, listener) => add(byConsultation, consultationId, listener),
    watchClinic: (clinicId, listener) => add(byClinic, clinicId, listener),
    watchDoctor: (clinicId, doctorId, listener) =>
      add(byDoctor, doctorKey(clinicId, doctorId), listener),
  };
}
