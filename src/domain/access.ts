import { DomainError } from './errors.js';

/**
 * Who may do what. One table of role → actions, and one `can()` that every use case
 * asks before it touches a consultation. Ownership and clinic tenancy are part of the
 * answer: a caller outside the consultation's clinic, or a patient or doctor who takes
 * no part in it, is told it does not exist.
 */
export type Role = 'patient' | 'doctor' | 'nurse' | 'clinic_admin' | 'service';
export const ROLES: readonly Role[] = ['patient', 'doctor', 'nurse', 'clinic_admin', 'service'];

/** The authenticated caller, from the verified token's claims. */
export interface Principal {
  readonly userId: string;
  readonly role: Role;
  readonly clinicId: string;
  /**
   * When the service stops accepting the token that proved it (its `exp`, plus the clock
   * skew the service allows, as for every call): a stream it opened ends then.
   */
  readonly expiresAt?: Date | undefined;
}

/** What a role may be allowed to do, in the order docs/security.md's table lists them. */
export const ACTIONS = [
  'consultation.schedule',
  'consultation.cancel',
  'consultation.reschedule',
  'consultation.read',
  'consultation.check_in',
  'consultation.admit',
  'consultation.start',
  'consultation.join',
  'consultation.end',
  'consultation.report_issue',
  'consultation.share_image',
  'consultation.record_consent',
  'consultation.record',
  'waiting_room.list',
  'history.list',
  'provider.status',
  'audit.list',
] as const;

export type Action =
  | (typeof ACTIONS)[number]
  /** The service's own sweeper only: no role has it. */
  | 'consultation.no_show'
  /** Attendance from the video provider's webhooks and reconciler: no role has it. */
  | 'consultation.attendance';

export const PERMISSIONS: Readonly<Record<Role, ReadonlySet<Action>>> = {
  patient: new Set([
    'consultation.read',
    'consultation.check_in',
    'consultation.join',
    'consultation.report_issue',
    'consultation.share_image',
    'consultation.record_consent',
    'history.list',
    'provider.status',
  ]),
  doctor: new Set([
    'consultation.read',
    'consultation.admit',
    'consultation.start',
    'consultation.end',
    'consultation.join',
    'consultation.report_issue',
    'consultation.share_image',
    'consultation.record_consent',
    'consultation.record',
    'waiting_room.list',
    'history.list',
    'provider.status',
  ]),
  // A nurse runs the clinic's waiting room: sees it and admits patients, but neither
  // starts, ends nor joins a consultation.
  nurse: new Set([
    'consultation.read',
    'consultation.admit',
    'waiting_room.list',
    'history.list',
    'provider.status',
  ]),
  clinic_admin: new Set([
    'consultation.schedule',
    'consultation.cancel',
    'consultation.reschedule',
    'consultation.read',
    'waiting_room.list',
    'history.list',
    'provider.status',
    'audit.list',
  ]),
  service: new Set([
    'consultation.schedule',
    'consultation.cancel',
    'consultation.reschedule',
    'consultation.read',
    'history.list',
    'provider.status',
  ]),
};

/** What `can()` needs to know about a consultation. */
export interface ConsultationScope {
  readonly clinicId: string;
  readonly doctorId: string;
  readonly patientId: string;
}

/** Whether the caller can see the consultation at all (tenancy and ownership). */
export function canSee(principal: Principal, consultation: ConsultationScope): boolean {
  if (principal.clinicId !== consultation.clinicId) return false;
  switch (principal.role) {
    case 'patient':
      return consultation.patientId === principal.userId;
    case 'doctor':
      return consultation.doctorId === principal.userId;
    default:
      return true;
  }
}

export function can(
  principal: Principal,
  action: Action,
  consultation?: ConsultationScope,
): boolean {
  if (!PERMISSIONS[principal.role].has(action)) return false;
  return consultation === undefined || canSee(principal, consultation);
}

/**
 * Refuses unless the caller may act. A role that may never take the action is refused
 * with PERMISSION_DENIED before anything is looked up (that tells nothing about any
 * record); otherwise a consultation the caller cannot see answers NOT_FOUND, so its
 * existence never leaks.
 */
export function authorize(
  principal: Principal,
  action: Action,
  consultation?: ConsultationScope,
): void {
  if (!PERMISSIONS[principal.role].has(action)) {
    throw new DomainError('permission_denied', `role ${principal.role} may not ${action}`);
  }
  if (consultation !== undefined && !canSee(principal, consultation)) {
    throw new DomainError('not_found', 'consultation not found');
  }
}
