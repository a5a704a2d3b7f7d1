import { describe, expect, it } from 'vitest';
import {
  type Action,
  authorize,
  can,
  type Principal,
  ROLES,
  type Role,
} from '../../src/domain/access.js';
import { DomainError } from '../../src/domain/errors.js';

/** The whole permission table, written out so that a change to the policy shows up here. */
const EXPECTED: Record<Role, Action[]> = {
  patient: [
    'consultation.read',
    'consultation.check_in',
    'consultation.join',
    'consultation.report_issue',
    'consultation.share_image',
    'consultation.record_consent',
    'history.list',
    'provider.status',
  ],
  doctor: [
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
  ],
  nurse: [
    'consultation.read',
    'consultation.admit',
    'waiting_room.list',
    'history.list',
    'provider.status',
  ],
  clinic_admin: [
    'consultation.schedule',
    'consultation.cancel',
    'consultation.reschedule',
    'consultation.read',
    'waiting_room.list',
    'history.list',
    'provider.status',
    'audit.list',
  ],
  service: [
    'consultation.schedule',
    'consultation.cancel',
    'consultation.reschedule',
    'consultation.read',
    'history.list',
    'provider.status',
  ],
};

const ALL_ACTIONS: Action[] = [
  ...new Set(Object.values(EXPECTED).flat()),
  'consultation.no_show',
  'consultation.attendance',
];

const consultation = { clinicId: 'c1', doctorId: 'd1', patientId: 'p1' };
/** A caller who takes part in `consultation` in the given role. */
const member = (role: Role): Principal => ({
  role,
  userId: role === 'patient' ? 'p1' : role === 'doctor' ? 'd1' : `${role}-1`,
  clinicId: 'c1',
});

function refusal(fn: () => void): Pick<DomainError, 'code' | 'message'> | 'allowed' {
  try {
    fn();
    return 'allowed';
  } catch (error) {
    if (!(error instanceof DomainError)) throw error;
    return { code: error.code, message: error.message };
  }
}

describe('permission table', () => {
  it('knows the five roles', () => {
    expect(ROLES).toEqual(Object.keys(EXPECTED));
  });

  for (const role of Object.keys(EXPECTED) as Role[]) {
    it(`gives a ${role} exactly its actions`, () => {
      const granted = ALL_ACTIONS.filter((action) => can(member(role), action));
      expect(granted.sort()).toEqual([...EXPECTED[role]].sort());
    });
  }

  it('leaves no-shows and attendance to the service itself: no caller may report them', () => {
    for (const role of ROLES) {
      expect(can(member(role), 'consultation.no_show', consultation)).toBe(false);
      expect(can(member(role), 'consultation.attendance', consultation)).toBe(false);
    }
  });
});

describe('acting on a consultation', () => {
  it('refuses an action the role lacks even on a consultation the caller takes part in', () => {
    expect(can(member('patient'), 'consultation.start', consultation)).toBe(false);
    expect(can(member('nurse'), 'consultation.join', consultation)).toBe(false);
  });

  it("lets the clinic's staff and the service see every consultation of the clinic", () => {
    for (const role of ['nurse', 'clinic_admin', 'service'] as const) {
      expect(can(member(role), 'consultation.read', consultation)).toBe(true);
    }
  });

  it('says which role may not do what, and nothing about the record', () => {
    expect(refusal(() => authorize(member('patient'), 'consultation.start', consultation))).toEqual(
      { code: 'permission_denied', message: 'role patient may not consultation.start' },
    );
  });

  it('answers "consultation not found" for a consultation the caller may not see', () => {
    const stranger: Principal = { role: 'patient', userId: 'p2', clinicId: 'c1' };
    expect(refusal(() => authorize(stranger, 'consultation.read', consultation))).toEqual({
      code: 'not_found',
      message: 'consultation not found',
    });
  });

  it('lets a role act where no consultation is involved', () => {
    expect(refusal(() => authorize(member('clinic_admin'), 'audit.list'))).toBe('allowed');
  });
});
