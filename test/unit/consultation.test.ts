import { describe, expect, it } from 'vitest';
import {
  allows,
  assertInsideJoinWindow,
  assertValidSlot,
  CONSULTATION_EVENTS,
  CONSULTATION_STATUSES,
  type ConsultationEvent,
  type ConsultationStatus,
  durationSeconds,
  FINAL_STATUSES,
  joinWindow,
  sweepDecision,
  transition,
} from '../../src/domain/consultation.js';
import { DomainError } from '../../src/domain/errors.js';

/** The whole state machine, written out as a table so a change to it shows up here. */
const EXPECTED: Record<
  ConsultationStatus,
  Partial<Record<ConsultationEvent, ConsultationStatus>>
> = {
  scheduled: {
    check_in: 'waiting',
    start: 'in_progress',
    cancel: 'cancelled',
    mark_no_show: 'no_show',
  },
  waiting: {
    check_in: 'waiting',
    start: 'in_progress',
    cancel: 'cancelled',
    mark_no_show: 'no_show',
  },
  in_progress: {
    check_in: 'in_progress',
    start: 'in_progress',
    end: 'ended',
    cancel: 'cancelled',
    mark_no_show: 'no_show',
  },
  ended: { end: 'ended' },
  cancelled: { cancel: 'cancelled' },
  no_show: { mark_no_show: 'no_show' },
};

describe('consultation state machine', () => {
  for (const from of CONSULTATION_STATUSES) {
    for (const event of CONSULTATION_EVENTS) {
      const to = EXPECTED[from][event];
      if (to) {
        it(`${from} --${event}--> ${to}`, () => {
          expect(transition(from, event)).toEqual({ from, to, changed: to !== from });
          expect(allows(from, event)).toBe(true);
        });
      } else {
        it(`${from} refuses ${event} with failed_precondition`, () => {
          expect(allows(from, event)).toBe(false);
          const error = catchError(() => transition(from, event));
          expect(error).toBeInstanceOf(DomainError);
          expect((error as DomainError).code).toBe('failed_precondition');
          expect((error as DomainError).message).toContain(from.replace('_', ' '));
        });
      }
    }
  }

  it('never leaves a final state for another state', () => {
    for (const from of FINAL_STATUSES) {
      for (const event of CONSULTATION_EVENTS) {
        if (allows(from, event)) expect(transition(from, event).to).toBe(from);
      }
    }
  });
});

describe('join window', () => {
  const slot = { start: new Date('2026-01-01T10:00:00Z'), end: new Date('2026-01-01T10:30:00Z') };
  const rules = { joinWindowBeforeMinutes: 15, graceAfterEndMinutes: 10 };

  it('opens before the slot and closes after its end plus grace', () => {
    expect(joinWindow(slot, rules)).toEqual({
      start: new Date('2026-01-01T09:45:00Z'),
      end: new Date('2026-01-01T10:40:00Z'),
    });
  });

  it.each([
    ['2026-01-01T09:44:59Z', false],
    ['2026-01-01T09:45:00Z', true],
    ['2026-01-01T10:15:00Z', true],
    ['2026-01-01T10:40:00Z', true],
    ['2026-01-01T10:40:01Z', false],
  ])('at %s inside: %s', (at, inside) => {
    const check = () => assertInsideJoinWindow(slot, rules, new Date(at));
    if (inside) expect(check).not.toThrow();
    else expect(check).toThrow(DomainError);
  });
});

describe('slots', () => {
  const start = new Date('2026-01-01T10:00:00Z');
  it('refuses an end before the start', () => {
    expect(() => assertValidSlot({ start, end: start })).toThrow(/scheduled_end/);
  });
  it('refuses a slot longer than 8 hours', () => {
    const end = new Date(start.getTime() + 8 * 3600_000 + 1);
    expect(() => assertValidSlot({ start, end })).toThrow(/at most 8 hours/);
  });
  it('accepts a normal slot', () => {
    expect(() =>
      assertValidSlot({ start, end: new Date(start.getTime() + 1800_000) }),
    ).not.toThrow();
  });
  it('counts whole seconds and never negative', () => {
    expect(durationSeconds(start, new Date(start.getTime() + 90_999))).toBe(90);
    expect(durationSeconds(start, new Date(start.getTime() - 5000))).toBe(0);
  });
});

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected an error');
}

describe('sweeper decisions', () => {
  const rules = { noShowGraceMinutes: 10, maxConsultationMinutes: 60 };
  const end = new Date('2026-01-01T10:30:00Z');
  const at = (iso: string) => new Date(iso);
  const base = {
    status: 'scheduled' as const,
    scheduledEnd: end,
    startedAt: null,
    patientJoined: false,
  };

  it('marks a no-show only after the slot plus grace, and only if the patient never joined', () => {
    expect(sweepDecision(base, rules, at('2026-01-01T10:40:00Z'))).toBeUndefined();
    expect(sweepDecision(base, rules, at('2026-01-01T10:40:01Z'))).toBe('no_show');
    expect(sweepDecision({ ...base, status: 'waiting' }, rules, at('2026-01-01T11:00:00Z'))).toBe(
      'no_show',
    );
    expect(
      sweepDecision({ ...base, patientJoined: true }, rules, at('2026-01-01T11:00:00Z')),
    ).toBeUndefined();
  });

  it('ends a consultation left open past the maximum length', () => {
    const started = {
      ...base,
      status: 'in_progress' as const,
      startedAt: at('2026-01-01T10:00:00Z'),
      patientJoined: true,
    };
    expect(sweepDecision(started, rules, at('2026-01-01T11:00:00Z'))).toBeUndefined();
    expect(sweepDecision(started, rules, at('2026-01-01T11:00:01Z'))).toBe('max_duration');
  });

  it('leaves finished consultations alone', () => {
    for (const status of ['ended', 'cancelled', 'no_show'] as const) {
      expect(sweepDecision({ ...base, status }, rules, at('2027-01-01T00:00:00Z'))).toBeUndefined();
    }
  });
});
