import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import type { Logger } from 'pino';
import {
  durationSeconds,
  type SweepRules,
  sweepDecision,
  transition,
} from '../domain/consultation.js';
import type { Clock } from '../domain/ports.js';
import { type ConsultationEntity, ConsultationSchema } from '../persistence/entities.js';
import type { ProviderRegistry } from '../providers/provider-registry.js';
import { addAuditEntry, type Caller } from './audit.js';
import { addEvent } from './events.js';
import { toProtoEndReason } from './proto-enums.js';

/** The actor audit entries name for what the sweeper does. */
export const SWEEPER_ACTOR = 'system:sweeper';
const BATCH = 100;

export interface Sweeper {
  start(): void;
  stop(): Promise<void>;
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
  const { orm, providers, clock, logger, rules } = deps;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> | undefined;

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
        const decision = apply(em, c, now);
        if (decision === 'no_show') noShows++;
        if (decision === 'max_duration') overruns++;
        // Either way the consultation is over: its provider session goes too.
        if (decision) closed.push(c);
      }
      return { noShows, overruns };
    });
    for (const c of closed) await closeSession(c);
    if (result.noShows + result.overruns > 0) logger.info(result, 'sweeper closed consultations');
    return result;
  }

  function apply(em: EntityManager, c: ConsultationEntity, now: Date) {
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
    const t = transition(c.status, decision === 'no_show' ? 'mark_no_show' : 'end');
    c.status = t.to;
    c.endedAt = now;
    c.endReason = decision;
    if (c.startedAt) c.durationSeconds = durationSeconds(c.startedAt, now);
    c.updatedAt = now;
    // The version grows at flush; events carry the version after the change.
    const version = c.version + 1;
    const scope = { appointmentId: c.appointmentId, consultationId: c.id, clinicId: c.clinicId };
    const at = timestampFromDate(now);
    if (decision === 'no_show') {
      addEvent(
        em,
        'video.consultation.no_show',
        scope,
        {
          appointmentId: c.appointmentId,
          consultationId: c.id,
          patientId: c.patientId,
          doctorId: c.doctorId,
          clinicId: c.clinicId,
          at,
          version,
        },
        now,
      );
    } else {
      addEvent(
        em,
        'video.consultation.ended',
        scope,
        {
          appointmentId: c.appointmentId,
          consultationId: c.id,
          sessionId: c.providerSessionId ?? '',
          durationSeconds: c.durationSeconds ?? 0,
          reason: toProtoEndReason('max_duration'),
          at,
          clinicId: c.clinicId,
          version,
        },
        now,
      );
    }
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

  async function closeSession(c: ConsultationEntity) {
    if (!c.provider || !c.providerSessionId) return;
    try {
      await providers.get(c.provider).endSession(c.providerSessionId);
    } catch (error) {
      logger.warn(
        { err: error, consultationId: c.id },
        'sweeper: could not close the provider session',
      );
    }
  }

  const tick = () => {
    running = sweepOnce()
      .catch((error: unknown) => logger.warn({ err: error }, 'sweep failed; next pass retries'))
      .finally(() => {
        if (timer) timer = setTimeout(tick, deps.intervalMs);
      });
  };

  return {
    start() {
      timer = setTimeout(tick, deps.intervalMs);
    },
    async stop() {
      clearTimeout(timer);
      timer = undefined;
      await running;
    },
    sweepOnce,
  };
}
