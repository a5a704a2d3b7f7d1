import type { MikroORM } from '@mikro-orm/postgresql';
import type { Logger } from 'pino';
import type { ProviderName } from '../domain/consultation.js';
import type { Clock, LiveConnection, ProviderRegistry } from '../domain/ports.js';
import { ProviderConnectionSchema } from '../persistence/entities.js';
import type { Attendance, AttendanceOutcome } from './attendance.js';
import { type PeriodicTask, periodicTask } from './periodic-task.js';

const BATCH = 20;

interface ClaimedRow {
  readonly id: string;
  readonly provider: ProviderName;
  readonly provider_session_id: string;
  /** Set once the consultation is over. */
  readonly ended_at: Date | string | null;
}

export interface Reconciler extends PeriodicTask {
  /** One pass; answers how many joins and leaves it repaired. */
  reconcileOnce(): Promise<{ joined: number; left: number }>;
}

/**
 * Repairs attendance that webhooks missed: for consultations in progress (and ended ones
 * where someone still counts as connected), compares the provider's live connections with
 * what the service recorded, and records the missing joins and leaves. Copies share the
 * work through a lease (rows claimed with FOR UPDATE SKIP LOCKED and stamped), and every
 * repair has a deterministic event id, so a repair is applied once even if two copies
 * see the same gap.
 */
export function createReconciler(deps: {
  orm: MikroORM;
  providers: ProviderRegistry;
  attendance: Attendance;
  clock: Clock;
  logger: Logger;
  intervalMs: number;
  /** Told the outcome of each repair it attempts (metrics). */
  onOutcome?: (outcome: AttendanceOutcome) => void;
}): Reconciler {
  const { orm, providers, attendance, clock, logger } = deps;

  async function claim() {
    const now = clock.now();
    const leaseBefore = new Date(now.getTime() - deps.intervalMs);
    return orm.em.fork().transactional(async (em) => {
      const rows = await em.execute<ClaimedRow[]>(
        // The candidates come from two small sets, each read through its own partial
        // index, so a pass costs what is open now, not the history (an OR of the two
        // conditions over consultation read every row).
        `select id, provider, provider_session_id, ended_at from consultation
          where id in (
                  select id from consultation where status = 'in_progress'
                  union
                  -- over, but someone still counts as connected: a leave was missed
                  select consultation_id from provider_connection where left_at is null)
            and provider_session_id is not null
            and (reconciled_at is null or reconciled_at < ?)
          order by reconciled_at nulls first
          limit ?
          for update skip locked`,
        [leaseBefore, BATCH],
      );
      if (rows.length > 0) {
        await em.execute(
          `update consultation set reconciled_at = ? where id in (${rows.map(() => '?').join(', ')})`,
          [now, ...rows.map((r) => r.id)],
        );
      }
      return rows;
    });
  }

  async function reconcileOnce() {
    let joined = 0;
    let left = 0;
    const claimed = await claim();
    for (const name of new Set(claimed.map((row) => row.provider))) {
      const provider = configured(name);
      if (!provider?.liveSessions) continue;
      const rows = claimed.filter((row) => row.provider === name);
      let live: ReadonlyMap<string, LiveConnection[]>;
      try {
        live = await provider.liveSessions(rows.map((row) => row.provider_session_id));
      } catch (error) {
        logger.warn({ err: error, provider: name }, 'reconciler: provider unreachable');
        continue;
      }
      for (const row of rows) {
        // A session the provider does not know (closed, or lost in a restart) has nobody in it.
        const repaired = await repair(row, live.get(row.provider_session_id) ?? []);
        joined += repaired.joined;
        left += repaired.left;
      }
    }
    if (joined + left > 0) logger.info({ joined, left }, 'reconciler repaired attendance');
    return { joined, left };
  }

  /** The provider, or undefined (and a warning) when it is no longer configured. */
  function configured(name: ProviderName) {
    try {
      return providers.get(name);
    } catch {
      logger.warn({ provider: name }, 'reconciler: provider not configured; its sessions wait');
      return undefined;
    }
  }

  /** Records the joins and leaves of one consultation that its webhooks missed. */
  async function repair(row: ClaimedRow, live: readonly LiveConnection[]) {
    let joined = 0;
    let left = 0;
    const recorded = await orm.em
      .fork()
      .find(ProviderConnectionSchema, { consultation: row.id, provider: row.provider });
    const byId = new Map(recorded.map((c) => [c.connectionId, c]));
    const liveIds = new Set(live.map((c) => c.connectionId));
    const base = { provider: row.provider, sessionId: row.provider_session_id };

    for (const connection of live) {
      if (byId.get(connection.connectionId)?.joinedAt) continue;
      const outcome = await attendance.recordConnection({
        ...base,
        eventId: `reconcile:${row.provider}:${connection.connectionId}:joined`,
        connectionId: connection.connectionId,
        participantId: connection.participantId,
        kind: 'joined',
        at: connection.joinedAt,
      });
      deps.onOutcome?.(outcome);
      if (outcome === 'applied') joined++;
    }
    // When exactly a connection ended is not known: the pass that sees it gone is the best
    // bound, or the consultation's end when that came earlier.
    const now = clock.now();
    const endedAt = row.ended_at === null ? undefined : new Date(row.ended_at);
    const leftAt = endedAt && endedAt < now ? endedAt : now;
    for (const connection of recorded) {
      if (connection.leftAt || liveIds.has(connection.connectionId)) continue;
      const outcome = await attendance.recordConnection({
        ...base,
        eventId: `reconcile:${row.provider}:${connection.connectionId}:left`,
        connectionId: connection.connectionId,
        participantId: undefined,
        kind: 'left',
        at: connection.joinedAt && leftAt < connection.joinedAt ? connection.joinedAt : leftAt,
        reason: 'unknown',
      });
      deps.onOutcome?.(outcome);
      if (outcome === 'applied') left++;
    }
    return { joined, left };
  }

  return {
    ...periodicTask('reconcile', deps.intervalMs, logger, reconcileOnce),
    reconcileOnce,
  };
}
