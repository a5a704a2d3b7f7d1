import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.js';
import { createOutboxRelay, type OutboxRelay } from '../../src/messaging/outbox-relay.js';
import { createOutboxSignal } from '../../src/video/events.js';
import type { UseCaseDeps } from '../../src/video/use-case.js';
import { checkIn } from '../../src/video/use-cases/check-in.js';
import { generateToken } from '../../src/video/use-cases/generate-token.js';
import { scheduleConsultation } from '../../src/video/use-cases/schedule-consultation.js';
import { appointmentId } from '../support/clients.js';
import { callerOf, openTestUseCases, type TestUseCases } from '../support/use-cases.js';

/**
 * The relay publishes what this copy committed at once, not at its next poll: the use
 * cases ring the outbox signal after their commit. The poll here is a minute long, so
 * only the signal can explain an event published within a second.
 */
const POLL_MS = 60_000;
let u: TestUseCases;
let relay: OutboxRelay;
const published: { type: string; at: number }[] = [];
const signal = createOutboxSignal();

beforeAll(async () => {
  u = await openTestUseCases();
  relay = createOutboxRelay({
    orm: u.database.orm,
    logger: createLogger('silent'),
    publisher: {
      async publish(batch) {
        for (const { record } of batch) {
          published.push({ type: record.headers.ce_type ?? '', at: Date.now() });
        }
      },
    },
    topicFor: (type) => type,
    source: 'test',
    batchSize: 100,
    pollIntervalMs: POLL_MS,
    leaseMs: 10_000,
    signal,
  });
  relay.start();
});
afterAll(async () => {
  await relay?.stop();
  await u?.stop();
});

async function schedule(deps: UseCaseDeps, patientId: string) {
  const start = new Date(Date.now() + 5 * 60_000);
  const { consultation } = await scheduleConsultation(deps, callerOf('service', 'appointments'), {
    appointmentId: appointmentId('signal'),
    doctorId: 'doc-signal',
    patientId,
    scheduledStart: start,
    scheduledEnd: new Date(start.getTime() + 30 * 60_000),
    provider: undefined,
  });
  return consultation.id;
}

/** When an event of `type` was published, waiting at most `withinMs` after `since`. */
async function publishedAt(type: string, since: number, withinMs: number) {
  while (Date.now() < since + withinMs) {
    const found = published.find((p) => p.type === type && p.at >= since);
    if (found) return found.at - since;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return undefined;
}

describe('the outbox signal', () => {
  it('has the relay publish a unit of work’s events and a token’s at once, instead of at the next poll', async () => {
    const deps = { ...u.deps, outbox: signal };
    const id = await schedule(deps, 'pat-signal-1');
    let since = Date.now();
    await checkIn(deps, callerOf('patient', 'pat-signal-1'), { consultationId: id });
    expect(await publishedAt('video.patient.waiting', since, 1_000)).toBeLessThan(1_000);
    since = Date.now();
    await generateToken(deps, callerOf('doctor', 'doc-signal'), { consultationId: id });
    expect(await publishedAt('video.token.generated', since, 1_000)).toBeLessThan(1_000);

    // Without it, the event waits for the poll.
    const quiet = await schedule(u.deps, 'pat-signal-2');
    since = Date.now();
    await checkIn(u.deps, callerOf('patient', 'pat-signal-2'), { consultationId: quiet });
    expect(await publishedAt('video.patient.waiting', since, 1_000)).toBeUndefined();
  });
});
