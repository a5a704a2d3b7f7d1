import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import type { Logger } from 'pino';
import { type SweepRules, sweepDecision } from '../domain/consultation.js';
import type { Clock, ProviderRegistry } from '../domain/ports.js';
import { type ConsultationEntity, ConsultationSchema } from '../persistence/entities.js';
import { addAuditEntry, type Caller } from './audit.js';
import { closeConsultation } from './close-consultation.js';
import { type PeriodicTask, periodicTask } from './periodic-task.js';
import { closeProviderSession } from './provider-session.js';

/** The actor audit entries name for what the sweeper does. */
export const SWEEPER_ACTOR = 'system:sweeper';
const BATCH = 100;

export interface Sweeper extends PeriodicTask {
  /** One pass; answers what it changed (for tests and logs). */
  sweepOnce(): Promise<{ noShows: number; overruns: number }>;
}

/**
 * Closes what nobody will close: consultations whose patient never joined by the end of
 * the slot plus grace become NO_SHOW, and consultations left open past the maximum
 * length are ended. Every copy of the service runs it; candidate rows are locked with
 * FOR UPDATE SKIP LOCKED, so copies split the work and each effect happens once, with its
 * event and audit entry in the same transaction.
 */
export function createSweeper(deps: {
  orm: MikroORM;
  providers: ProviderRegistry;
  clock: Clock;
  logger: Logger;
  rules: SweepRules;
  intervalMs: number;
}): Sweeper {
  const { orm, clock, logger, rules } = deps;

  async function sweepOnce() {
    const now = clock.now();
    const noShowBefore = new Date(now.getTime() - rules.noShowGraceMinutes * 60_000);
    const startedBefore = new Date(now.getTime() - rules.maxConsultationMinutes * 60_000);
    const closed: ConsultationEntity[] = [];
    const result = await orm.em.fork().transactional(async (em) => {
      // em.execute runs inside this transaction, so the row locks last until commit.
      const rows = await em.execute<{ id: string }[]>(
        `select c.id from consultation c
           join participant p on p.consultation_id = c.id and p.role = 'patient'
          where c.status in ('scheduled', 'waiting', 'in_progress')
            and ((c.scheduled_end < ? and p.first_joined_at is null and p.first_token_at is null)
              or (c.status = 'in_progress' and c.started_at < ?))
          order by c.scheduled_end
          limit ?
          for update of c skip locked`,
        [noShowBefore, startedBefore, BATCH],
      );
      if (rows.length === 0) return { noShows: 0, overruns: 0 };
      const consultations = await em.find(
        ConsultationSchema,
        { id: { $in: rows.map((r) => r.id) } },
        { populate: ['participants'] },
      );
      let noShows = 0;
      let overruns = 0;
      for (const c of consultations) {
        const decision = await apply(em, c, now);
        if (decision === 'no_show') noShows++;
        if (decision === 'max_duration') overruns++;
        // Either way the consultation is over: its provider session goes too.
        if (decision) closed.push(c);
      }
      return { noShows, overruns };
    });
    for (const c of closed) await closeProviderSession(deps, c);
    if (result.noShows + result.overruns > 0) logger.info(result, 'sweeper closed consultations');
    return result;
  }

  /** Closes one consultation if the rules say so, with its audit entry; answers why. */
  async function apply(em: EntityManager, c: ConsultationEntity, now: Date) {
    const patient = c.participants.getItems().find((p) => p.role === 'patient');
    const decision = sweepDecision(
      {
        status: c.status,
        scheduledEnd: c.scheduledEnd,
        startedAt: c.startedAt ?? null,
        patientJoined: Boolean(patient?.firstJoinedAt ?? patient?.firstTokenAt),
      },
      rules,
      now,
    );
    if (!decision) return undefined;
    await closeConsultation(em, c, decision, now);
    const caller: Caller = {
      principal: { userId: SWEEPER_ACTOR, role: 'service', clinicId: c.clinicId },
    };
    addAuditEntry(
      em,
      caller,
      {
        action: decision === 'no_show' ? 'consultation.no_show' : 'consultation.end',
        resourceType: 'consultation',
        resourceId: c.id,
        outcome: 'allowed',
      },
      now,
    );
    return decision;
  }

  return {
    ...periodicTask('sweep', deps.intervalMs, logger, sweepOnce),
    sweepOnce,
  };
}
