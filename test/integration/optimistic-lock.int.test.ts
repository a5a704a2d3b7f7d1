import type { EventSubscriber } from '@mikro-orm/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DomainError } from '../../src/domain/errors.js';
import { cancelConsultation } from '../../src/video/use-cases/cancel-consultation.js';
import { checkIn } from '../../src/video/use-cases/check-in.js';
import { scheduleConsultation } from '../../src/video/use-cases/schedule-consultation.js';
import { appointmentId } from '../support/clients.js';
import { serverForSeveralCopies } from '../support/database.js';
import { callerOf, openTestUseCases, type TestUseCases } from '../support/use-cases.js';

/**
 * Optimistic versioning, forced: another writer changes the consultation after a unit of
 * work has read it and before it writes. The unit must notice (its versioned UPDATE
 * matches no row), replay from the fresh state, and decide again. On a PostgreSQL server
 * only: the competing write needs a second connection, which the embedded engine's single
 * connection cannot give while the unit's transaction holds it.
 */
let u: TestUseCases;
const service = callerOf('service', 'appointments');

beforeAll(async () => {
  if (serverForSeveralCopies) u = await openTestUseCases();
});
afterAll(async () => {
  await u?.stop();
});

async function schedule(patientId: string) {
  const start = new Date(Date.now() + 5 * 60_000);
  const { consultation } = await scheduleConsultation(u.deps, service, {
    appointmentId: appointmentId('lock'),
    doctorId: 'doc-lock',
    patientId,
    scheduledStart: start,
    scheduledEnd: new Date(start.getTime() + 30 * 60_000),
    provider: undefined,
  });
  return consultation;
}

/**
 * Runs `competing` (on its own connection, committed at once) the first time a unit of
 * work flushes, that is between its load and its versioned write; counts the flushes.
 */
function beforeFirstFlush(competing: () => Promise<unknown>) {
  const state = { flushes: 0 };
  const subscriber: EventSubscriber = {
    async beforeFlush() {
      state.flushes++;
      if (state.flushes === 1) await competing();
    },
  };
  u.database.orm.em.getEventManager().registerSubscriber(subscriber);
  return state;
}

async function row(id: string) {
  const [found] = await u.sql<{ status: string; version: number }>(
    'select status, version from consultation where id = ?',
    [id],
  );
  return found;
}

async function outboxTypes(id: string) {
  const rows = await u.sql<{ type: string }>(
    `select type from outbox_message where subject = ? order by seq`,
    [id],
  );
  return rows.map((r) => r.type);
}

describe.runIf(serverForSeveralCopies)('a unit of work that loses its race', () => {
  it('replays when the row changed between its load and its write, and commits on the new version', async () => {
    const c = await schedule('pat-lock-1');
    const replaysBefore = u.replays.length;
    const flushes = beforeFirstFlush(() =>
      u.sql('update consultation set version = version + 1 where id = ?', [c.id]),
    );

    const cancelled = await cancelConsultation(u.deps, service, { consultationId: c.id });

    expect(u.replays.slice(replaysBefore)).toEqual(['version_conflict']);
    expect(flushes.flushes).toBeGreaterThanOrEqual(2);
    // 1 scheduled, 2 the competing write, 3 the cancel that replayed on top of it.
    expect(cancelled).toMatchObject({ status: 'cancelled', version: 3 });
    expect(await row(c.id)).toEqual({ status: 'cancelled', version: 3 });
    expect(await outboxTypes(c.id)).toEqual(['video.consultation.cancelled']);
    const audit = await u.sql<{ outcome: string }>(
      `select outcome from audit_entry where resource_id = ? and action = 'consultation.cancel'`,
      [c.id],
    );
    expect(audit).toEqual([{ outcome: 'allowed' }]);
  });

  it('decides again on the winner’s state: a check-in that lost to a cancel is refused', async () => {
    const c = await schedule('pat-lock-2');
    const replaysBefore = u.replays.length;
    beforeFirstFlush(() =>
      u.sql(
        `update consultation set status = 'cancelled', end_reason = 'cancelled', ended_at = now(),
           version = version + 1 where id = ?`,
        [c.id],
      ),
    );

    const refused = await checkIn(u.deps, callerOf('patient', 'pat-lock-2'), {
      consultationId: c.id,
    }).then(
      () => undefined,
      (error: unknown) => error,
    );

    expect(u.replays.slice(replaysBefore)).toEqual(['version_conflict']);
    expect(refused).toBeInstanceOf(DomainError);
    expect(refused).toMatchObject({
      code: 'failed_precondition',
      message: 'cannot check in a consultation that is cancelled',
    });
    // Nothing of the losing attempt was written: no check-in, no event, no version.
    expect(await row(c.id)).toEqual({ status: 'cancelled', version: 2 });
    const [patient] = await u.sql<{ checked_in_at: Date | null }>(
      `select checked_in_at from participant where consultation_id = ? and role = 'patient'`,
      [c.id],
    );
    expect(patient?.checked_in_at).toBeNull();
    expect(await outboxTypes(c.id)).toEqual([]);
  });
});
