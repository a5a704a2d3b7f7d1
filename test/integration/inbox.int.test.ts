import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DomainError } from '../../src/domain/errors.js';
import { type Caller, EventAlreadyHandled } from '../../src/video/audit.js';
import { cancelConsultation } from '../../src/video/use-cases/cancel-consultation.js';
import { scheduleConsultation } from '../../src/video/use-cases/schedule-consultation.js';
import { appointmentId } from '../support/clients.js';
import { callerOf, openTestUseCases, type TestUseCases } from '../support/use-cases.js';

/**
 * The inbox: an appointment event is applied once however often Kafka delivers it. The
 * effects are counted where they land (consultations, audit entries, outbox events) and
 * the inbox is read directly, so the test fails on a missing lookup rather than on
 * whichever unique key happens to stop the second effect. Either engine.
 */
let u: TestUseCases;
beforeAll(async () => {
  u = await openTestUseCases();
});
afterAll(async () => {
  await u?.stop();
});

const SOURCE = '/appointments-service';

/** The caller the appointment consumer makes for one delivery of an event. */
const delivery = (eventId: string, topic: string): Caller =>
  callerOf('service', 'appointment-events', 'clinic-1', {
    requestId: eventId,
    inbox: { source: SOURCE, eventId, topic },
  });

const outcome = (call: Promise<unknown>) =>
  call.then(
    () => 'applied',
    (error: unknown) =>
      error instanceof EventAlreadyHandled
        ? 'already handled'
        : error instanceof DomainError
          ? error.code
          : Promise.reject(error),
  );

async function count(sql: string, params: unknown[]): Promise<number> {
  const [row] = await u.sql<{ n: string | number }>(`select count(*) as n from ${sql}`, params);
  return Number(row?.n);
}

function schedule(eventId: string, appointment: string) {
  const start = new Date(Date.now() + 60 * 60_000);
  return scheduleConsultation(u.deps, delivery(eventId, 'appointment.created'), {
    appointmentId: appointment,
    doctorId: 'doc-inbox',
    patientId: 'pat-inbox',
    scheduledStart: start,
    scheduledEnd: new Date(start.getTime() + 30 * 60_000),
    provider: undefined,
  });
}

describe('the inbox of appointment events', () => {
  it('applies an event delivered three times once: one effect, one inbox entry', async () => {
    const appointment = appointmentId('inbox');
    const outcomes = [];
    for (let delivered = 0; delivered < 3; delivered++) {
      outcomes.push(await outcome(schedule('evt-created-1', appointment)));
    }
    expect(outcomes).toEqual(['applied', 'already handled', 'already handled']);
    expect(
      await u.sql('select source, event_id, topic from inbox_message where event_id = ?', [
        'evt-created-1',
      ]),
    ).toEqual([{ source: SOURCE, event_id: 'evt-created-1', topic: 'appointment.created' }]);
    expect(await count('consultation where appointment_id = ?', [appointment])).toBe(1);
    expect(
      await count(`audit_entry where request_id = ? and action = 'consultation.schedule'`, [
        'evt-created-1',
      ]),
    ).toBe(1);
  });

  it('applies a cancellation once: one audit entry, one event, one new version', async () => {
    const appointment = appointmentId('inbox-cancel');
    const { consultation } = await schedule('evt-created-2', appointment);
    const cancel = () =>
      outcome(
        cancelConsultation(u.deps, delivery('evt-cancelled-2', 'appointment.cancelled'), {
          appointmentId: appointment,
        }),
      );
    expect([await cancel(), await cancel()]).toEqual(['applied', 'already handled']);
    expect(await count('inbox_message where event_id = ?', ['evt-cancelled-2'])).toBe(1);
    expect(
      await count(`audit_entry where request_id = ? and action = 'consultation.cancel'`, [
        'evt-cancelled-2',
      ]),
    ).toBe(1);
    expect(await count(`outbox_message where subject = ?`, [consultation.id])).toBe(1);
    const [row] = await u.sql<{ version: number }>(
      'select version from consultation where id = ?',
      [consultation.id],
    );
    expect(row?.version).toBe(2);
  });

  it('records nothing for an event whose effect was refused, so a later delivery applies it', async () => {
    const appointment = appointmentId('inbox-later');
    const cancel = () =>
      outcome(
        cancelConsultation(u.deps, delivery('evt-cancelled-3', 'appointment.cancelled'), {
          appointmentId: appointment,
        }),
      );
    // The cancellation overtook the creation: refused, and not recorded as handled.
    expect(await cancel()).toBe('not_found');
    expect(await count('inbox_message where event_id = ?', ['evt-cancelled-3'])).toBe(0);
    await schedule('evt-created-3', appointment);
    expect(await cancel()).toBe('applied');
    expect(await count('inbox_message where event_id = ?', ['evt-cancelled-3'])).toBe(1);
  });
});
