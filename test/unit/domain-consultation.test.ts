import { describe, expect, it } from 'vitest';
import {
  assertInsideJoinWindow,
  assertValidSlot,
  CONSULTATION_EVENTS,
  CONSULTATION_STATUSES,
  missingConsent,
  sweepDecision,
  transition,
} from '../../src/domain/consultation.js';
import { DomainError } from '../../src/domain/errors.js';

/** What a rule refused with, or 'accepted'. */
function refusal(fn: () => void): Pick<DomainError, 'code' | 'message' | 'field'> | 'accepted' {
  try {
    fn();
    return 'accepted';
  } catch (error) {
    if (!(error instanceof DomainError)) throw error;
    return { code: error.code, message: error.message, field: error.field };
  }
}

describe('states and events', () => {
  it('lists every status and every event once', () => {
    expect(CONSULTATION_STATUSES).toEqual([
      'scheduled',
      'waiting',
      'in_progress',
      'ended',
      'cancelled',
      'no_show',
    ]);
    expect(CONSULTATION_EVENTS).toEqual(['check_in', 'start', 'end', 'cancel', 'mark_no_show']);
  });

  it('explains a refused transition in words', () => {
    expect(refusal(() => transition('ended', 'check_in'))).toEqual({
      code: 'failed_precondition',
      message: 'cannot check in a consultation that is ended',
      field: undefined,
    });
    expect(refusal(() => transition('no_show', 'start'))).toMatchObject({
      message: 'cannot start a consultation that is no show',
    });
    expect(refusal(() => transition('ended', 'mark_no_show'))).toMatchObject({
      message: 'cannot mark no show a consultation that is ended',
    });
  });
});

describe('recording consent', () => {
  const at = new Date('2026-01-01T10:00:00Z');

  it('names the participants who have not consented yet', () => {
    expect(
      missingConsent([
        { role: 'doctor', recordingConsentAt: at },
        { role: 'patient', recordingConsentAt: null },
      ]),
    ).toEqual(['patient']);
    expect(
      missingConsent([
        { role: 'doctor', recordingConsentAt: undefined },
        { role: 'patient', recordingConsentAt: at },
      ]),
    ).toEqual(['doctor']);
  });

  it('is satisfied once everyone has consented', () => {
    expect(
      missingConsent([
        { role: 'doctor', recordingConsentAt: at },
        { role: 'patient', recordingConsentAt: at },
      ]),
    ).toEqual([]);
  });
});

describe('join window refusals', () => {
  const slot = { start: new Date('2026-01-01T10:00:00Z'), end: new Date('2026-01-01T10:30:00Z') };
  const rules = { joinWindowBeforeMinutes: 15, graceAfterEndMinutes: 10 };

  it('tells a caller who is early when the window opens', () => {
    expect(
      refusal(() => assertInsideJoinWindow(slot, rules, new Date('2026-01-01T09:00:00Z'))),
    ).toEqual({
      code: 'failed_precondition',
      message: 'the join window opens at 2026-01-01T09:45:00.000Z (15 minutes before the slot)',
      field: undefined,
    });
  });

  it('tells a caller who is late when the window closed', () => {
    expect(
      refusal(() => assertInsideJoinWindow(slot, rules, new Date('2026-01-01T11:00:00Z'))),
    ).toEqual({
      code: 'failed_precondition',
      message: 'the join window closed at 2026-01-01T10:40:00.000Z',
      field: undefined,
    });
  });
});

describe('slot refusals', () => {
  const start = new Date('2026-01-01T10:00:00Z');
  const hours = (n: number) => new Date(start.getTime() + n * 3600_000);

  it('points at scheduled_end when the slot ends before it starts', () => {
    expect(refusal(() => assertValidSlot({ start, end: hours(-1) }))).toEqual({
      code: 'invalid_argument',
      message: 'scheduled_end: must be after scheduled_start',
      field: 'scheduled_end',
    });
  });

  it('accepts a slot of exactly 8 hours and points at scheduled_end past that', () => {
    expect(refusal(() => assertValidSlot({ start, end: hours(8) }))).toBe('accepted');
    expect(refusal(() => assertValidSlot({ start, end: hours(9) }))).toEqual({
      code: 'invalid_argument',
      message: 'scheduled_end: a slot lasts at most 8 hours',
      field: 'scheduled_end',
    });
  });
});

describe('sweeping overruns', () => {
  const rules = { noShowGraceMinutes: 10, maxConsultationMinutes: 60 };

  it('measures the maximum length only while the consultation is in progress', () => {
    const candidate = {
      status: 'waiting' as const,
      scheduledEnd: new Date('2026-01-01T10:30:00Z'),
      startedAt: new Date('2026-01-01T10:00:00Z'),
      patientJoined: true,
    };
    expect(sweepDecision(candidate, rules, new Date('2026-01-01T12:00:00Z'))).toBeUndefined();
    expect(
      sweepDecision(
        { ...candidate, status: 'in_progress' },
        rules,
        new Date('2026-01-01T12:00:00Z'),
      ),
    ).toBe('max_duration');
  });
});
