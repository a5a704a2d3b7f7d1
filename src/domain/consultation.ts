import { DomainError, failedPrecondition } from './errors.js';

/**
 * The consultation's life, as pure rules: states, the events that move between them, and
 * the time windows. No I/O here; use cases load, apply and persist.
 */
export type ConsultationStatus =
  | 'scheduled'
  | 'waiting'
  | 'in_progress'
  | 'ended'
  | 'cancelled'
  | 'no_show';

export type ConsultationEvent = 'check_in' | 'start' | 'end' | 'cancel' | 'mark_no_show';

export type ParticipantRole = 'patient' | 'doctor';
export type ProviderName = 'jitsi' | 'openvidu';
export type RecordingStatus = 'started' | 'stopped' | 'ready' | 'failed';

/** The roles that have not consented to recording yet; recording needs this empty. */
export function missingConsent(
  participants: readonly { role: ParticipantRole; recordingConsentAt: Date | null | undefined }[],
): ParticipantRole[] {
  return participants.filter((p) => !p.recordingConsentAt).map((p) => p.role);
}

export type EndReason = 'completed' | 'cancelled' | 'no_show' | 'max_duration' | 'provider_closed';

export const CONSULTATION_STATUSES: readonly ConsultationStatus[] = [
  'scheduled',
  'waiting',
  'in_progress',
  'ended',
  'cancelled',
  'no_show',
];
export const CONSULTATION_EVENTS: readonly ConsultationEvent[] = [
  'check_in',
  'start',
  'end',
  'cancel',
  'mark_no_show',
];

/** The terminal states: nothing moves a consultation out of them. */
export const FINAL_STATUSES: ReadonlySet<ConsultationStatus> = new Set([
  'ended',
  'cancelled',
  'no_show',
]);

/**
 * Where each event leads from each state. A missing entry is an illegal transition.
 * An event that leads a state to itself is an idempotent repeat (checking in twice,
 * starting a started consultation): allowed, and it changes nothing.
 */
const TRANSITIONS: Readonly<
  Record<ConsultationStatus, Partial<Record<ConsultationEvent, ConsultationStatus>>>
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
  // The patient may (re)enter the waiting room after the doctor started; a doctor may
  // start and wait for a patient who never comes.
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

export interface Transition {
  readonly from: ConsultationStatus;
  readonly to: ConsultationStatus;
  /** False for an idempotent repeat: nothing to write, nothing to announce. */
  readonly changed: boolean;
}

/** Applies an event to a state, or refuses with FAILED_PRECONDITION. */
export function transition(from: ConsultationStatus, event: ConsultationEvent): Transition {
  const to = TRANSITIONS[from][event];
  if (to === undefined) {
    throw failedPrecondition(
      `cannot ${event.replaceAll('_', ' ')} a consultation that is ${from.replaceAll('_', ' ')}`,
    );
  }
  return { from, to, changed: to !== from };
}

/** Whether the state machine allows an event in a state (for tests and docs). */
export function allows(from: ConsultationStatus, event: ConsultationEvent): boolean {
  return TRANSITIONS[from][event] !== undefined;
}

export interface TimeWindow {
  readonly start: Date;
  readonly end: Date;
}

export interface WindowRules {
  readonly joinWindowBeforeMinutes: number;
  readonly graceAfterEndMinutes: number;
}

const MINUTE = 60_000;
/** Longest slot a consultation may have. */
export const MAX_SLOT_MINUTES = 8 * 60;

/** When participants may check in and join: a little before the slot until its end plus grace. */
export function joinWindow(slot: TimeWindow, rules: WindowRules): TimeWindow {
  return {
    start: new Date(slot.start.getTime() - rules.joinWindowBeforeMinutes * MINUTE),
    end: new Date(slot.end.getTime() + rules.graceAfterEndMinutes * MINUTE),
  };
}

/** Refuses with FAILED_PRECONDITION when `now` lies outside the join window. */
export function assertInsideJoinWindow(slot: TimeWindow, rules: WindowRules, now: Date): void {
  const window = joinWindow(slot, rules);
  if (now < window.start) {
    throw failedPrecondition(
      `the join window opens at ${window.start.toISOString()} (${rules.joinWindowBeforeMinutes} minutes before the slot)`,
    );
  }
  if (now > window.end) {
    throw failedPrecondition(`the join window closed at ${window.end.toISOString()}`);
  }
}

/** Refuses a slot that ends before it starts or lasts longer than MAX_SLOT_MINUTES. */
export function assertValidSlot(slot: TimeWindow): void {
  if (slot.end <= slot.start) {
    throw new DomainError(
      'invalid_argument',
      'scheduled_end: must be after scheduled_start',
      'scheduled_end',
    );
  }
  if (slot.end.getTime() - slot.start.getTime() > MAX_SLOT_MINUTES * MINUTE) {
    throw new DomainError(
      'invalid_argument',
      `scheduled_end: a slot lasts at most ${MAX_SLOT_MINUTES / 60} hours`,
      'scheduled_end',
    );
  }
}

/** Whole seconds between two instants, never negative. */
export function durationSeconds(start: Date, end: Date): number {
  return Math.max(0, Math.floor((end.getTime() - start.getTime()) / 1000));
}

export interface SweepRules {
  /** After the slot's end, how long a patient who never joined is still waited for. */
  readonly noShowGraceMinutes: number;
  /** How long a started consultation may stay open before the service ends it. */
  readonly maxConsultationMinutes: number;
}

/** What the sweeper needs to know about a consultation. */
export interface SweepCandidate {
  readonly status: ConsultationStatus;
  readonly scheduledEnd: Date;
  readonly startedAt: Date | null;
  /** Whether the patient ever joined (attendance), or at least got a join token. */
  readonly patientJoined: boolean;
}

/**
 * What the sweeper does with a consultation now: mark it a no-show (the patient never
 * joined by the end of the slot plus grace), end it as overrun (open past the maximum
 * length), or leave it.
 */
export function sweepDecision(
  c: SweepCandidate,
  rules: SweepRules,
  now: Date,
): 'no_show' | 'max_duration' | undefined {
  if (FINAL_STATUSES.has(c.status)) return undefined;
  const noShowAt = c.scheduledEnd.getTime() + rules.noShowGraceMinutes * MINUTE;
  if (!c.patientJoined && now.getTime() > noShowAt) return 'no_show';
  if (
    c.status === 'in_progress' &&
    c.startedAt &&
    now.getTime() > c.startedAt.getTime() + rules.maxConsultationMinutes * MINUTE
  ) {
    return 'max_duration';
  }
  return undefined;
}

/** What a participant reports went wrong with the call. */
export type TechnicalIssueKind = 'audio' | 'video' | 'connection' | 'other';
