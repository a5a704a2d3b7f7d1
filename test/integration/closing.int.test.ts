import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAttendance } from '../../src/video/attendance.js';
import { createSweeper } from '../../src/video/sweeper.js';
import { cancelConsultation } from '../../src/video/use-cases/cancel-consultation.js';
import { endConsultation } from '../../src/video/use-cases/end-consultation.js';
import { generateToken } from '../../src/video/use-cases/generate-token.js';
import { scheduleConsultation } from '../../src/video/use-cases/schedule-consultation.js';
import { startConsultation } from '../../src/video/use-cases/start-consultation.js';
import { appointmentId } from '../support/clients.js';
import { callerOf, openTestUseCases, type TestUseCases } from '../support/use-cases.js';

/**
 * One way to end a consultation, whichever path ends it: the doctor (EndConsultation), a
 * cancellation, the sweeper (an overrun) and the provider closing its session. Each path
 * starts from the same consultation, started at the same time and closed the same time
 * later, and must leave the same version, duration, end time, `ended` event and one
 * audit entry. Either engine.
 */
const STARTED = Date.parse('2026-05-04T10:00:00.000Z');
const MAX_MINUTES = 60;
/** Past the maximum length, so that the sweeper ends it too. */
const LASTED_MS = MAX_MINUTES * 60_000 + 5_250;

let now = STARTED;
let u: TestUseCases;
beforeAll(async () => {
  u = await openTestUseCases(
    { MAX_CONSULTATION_MINUTES: String(MAX_MINUTES) },
    { now: () => new Date(now) },
  );
});
afterAll(async () => {
  await u?.stop();
});

const doctor = callerOf('doctor', 'doc-close');
const service = callerOf('service', 'appointments');

/** A consultation started at STARTED, its patient's token issued; the clock then at the close. */
async function startedConsultation() {
  now = STARTED;
  const { consultation } = await scheduleConsultation(u.deps, service, {
    appointmentId: appointmentId('close'),
    doctorId: 'doc-close',
    patientId: 'pat-close',
    scheduledStart: new Date(STARTED + 60_000),
    scheduledEnd: new Date(STARTED + 31 * 60_000),
    provider: undefined,
  });
  const { consultationId } = { consultationId: consultation.id };
  const started = await startConsultation(u.deps, doctor, { consultationId });
  await generateToken(u.deps, callerOf('patient', 'pat-close'), { consultationId });
  now = STARTED + LASTED_MS;
  return { id: consultation.id, sessionId: started.consultation.providerSessionId ?? '' };
}

async function closedState(id: string) {
  const [row] = await u.sql<{
    status: string;
    version: number;
    duration_seconds: number;
    ended_at: Date | string;
    end_reason: string;
  }>(
    'select status, version, duration_seconds, ended_at, end_reason from consultation where id = ?',
    [id],
  );
  const events = await u.sql<{ type: string; payload: Record<string, unknown> | string }>(
    `select type, payload from outbox_message where subject = ? and type like 'video.consultation.%'
      order by seq`,
    [id],
  );
  const ended = events
    .filter((e) => e.type === 'video.consultation.ended')
    .map((e) => (typeof e.payload === 'string' ? JSON.parse(e.payload) : e.payload));
  const audit = await u.sql<{ actor_id: string; action: string }>(
    `select actor_id, action from audit_entry
      where resource_id = ? and action in ('consultation.end', 'consultation.cancel')`,
    [id],
  );
  return {
    status: row?.status,
    endReason: row?.end_reason,
    version: row?.version,
    durationSeconds: row?.duration_seconds,
    endedAt: row && new Date(row.ended_at).toISOString(),
    events: events.map((e) => e.type),
    ended: ended.map((p) => ({
      durationSeconds: p.durationSeconds,
      version: p.version,
      reason: p.reason,
      at: p.at,
    })),
    audit: audit.map((a) => `${a.actor_id} ${a.action}`),
  };
}

const CLOSED_AT = new Date(STARTED + LASTED_MS).toISOString();
const SAME = {
  // Scheduled (1), started (2), closed (3); 3605 whole seconds of the 3605.25 it lasted.
  version: 3,
  durationSeconds: 3605,
  endedAt: CLOSED_AT,
};

describe('ending a consultation, by each of its four paths', () => {
  it('the doctor ends it', async () => {
    const { id } = await startedConsultation();
    await endConsultation(u.deps, doctor, { consultationId: id });
    expect(await closedState(id)).toEqual({
      ...SAME,
      status: 'ended',
      endReason: 'completed',
      events: ['video.consultation.started', 'video.consultation.ended'],
      ended: [{ durationSeconds: 3605, version: 3, reason: 'END_REASON_COMPLETED', at: CLOSED_AT }],
      audit: ['doc-close consultation.end'],
    });
  });

  it('it is cancelled while live', async () => {
    const { id } = await startedConsultation();
    await cancelConsultation(u.deps, service, { consultationId: id });
    expect(await closedState(id)).toEqual({
      ...SAME,
      status: 'cancelled',
      endReason: 'cancelled',
      events: [
        'video.consultation.started',
        'video.consultation.cancelled',
        'video.consultation.ended',
      ],
      ended: [{ durationSeconds: 3605, version: 3, reason: 'END_REASON_CANCELLED', at: CLOSED_AT }],
      audit: ['appointments consultation.cancel'],
    });
  });

  it('the sweeper ends it past the maximum length', async () => {
    const { id } = await startedConsultation();
    const sweeper = createSweeper({
      orm: u.database.orm,
      providers: u.deps.providers,
      clock: u.deps.clock,
      logger: u.deps.logger,
      rules: u.config.consultation,
      intervalMs: 60_000,
    });
    expect(await sweeper.sweepOnce()).toMatchObject({ overruns: 1 });
    expect(await closedState(id)).toEqual({
      ...SAME,
      status: 'ended',
      endReason: 'max_duration',
      events: ['video.consultation.started', 'video.consultation.ended'],
      ended: [
        { durationSeconds: 3605, version: 3, reason: 'END_REASON_MAX_DURATION', at: CLOSED_AT },
      ],
      audit: ['system:sweeper consultation.end'],
    });
  });

  it('the provider closes its session', async () => {
    const { id, sessionId } = await startedConsultation();
    const attendance = createAttendance({
      orm: u.database.orm,
      clock: u.deps.clock,
      logger: u.deps.logger,
    });
    expect(
      await attendance.sessionClosed({
        eventId: `closed-${id}`,
        provider: 'jitsi',
        sessionId,
        at: new Date(STARTED + LASTED_MS),
      }),
    ).toBe('applied');
    expect(await closedState(id)).toEqual({
      ...SAME,
      status: 'ended',
      endReason: 'provider_closed',
      events: ['video.consultation.started', 'video.consultation.ended'],
      ended: [
        { durationSeconds: 3605, version: 3, reason: 'END_REASON_PROVIDER_CLOSED', at: CLOSED_AT },
      ],
      audit: ['provider:jitsi consultation.end'],
    });
  });
});
