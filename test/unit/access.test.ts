import { describe, expect, it } from 'vitest';
import { authorize, can, type Principal, ROLES } from '../../src/domain/access.js';
import type { DomainError } from '../../src/domain/errors.js';

const consultation = { clinicId: 'c1', doctorId: 'd1', patientId: 'p1' };
const as = (role: Principal['role'], userId: string, clinicId = 'c1'): Principal => ({
  role,
  userId,
  clinicId,
});

describe('access policy', () => {
  it('lets a patient act only on their own consultation', () => {
    expect(can(as('patient', 'p1'), 'consultation.check_in', consultation)).toBe(true);
    expect(can(as('patient', 'p2'), 'consultation.check_in', consultation)).toBe(false);
  });

  it('lets a doctor act only on consultations assigned to them', () => {
    expect(can(as('doctor', 'd1'), 'consultation.start', consultation)).toBe(true);
    expect(can(as('doctor', 'd2'), 'consultation.start', consultation)).toBe(false);
  });

  it('never crosses clinics, whatever the role', () => {
    for (const role of ROLES) {
      expect(can(as(role, 'd1', 'c2'), 'consultation.read', consultation)).toBe(false);
    }
  });

  it('answers PERMISSION_DENIED for a wrong role, then NOT_FOUND for an invisible consultation', () => {
    const code = (p: Principal, action: Parameters<typeof authorize>[1]) => {
      try {
        authorize(p, action, consultation);
        return 'allowed';
      } catch (error) {
        return (error as DomainError).code;
      }
    };
    expect(code(as('patient', 'p2'), 'consultation.read')).toBe('not_found');
    expect(code(as('service', 's1', 'c2'), 'consultation.cancel')).toBe('not_found');
    expect(code(as('patient', 'p1'), 'consultation.start')).toBe('permission_denied');
    expect(code(as('nurse', 'n1'), 'consultation.end')).toBe('permission_denied');
    // A role that may never act is refused as such, whichever record it names.
    expect(code(as('patient', 'p2', 'c2'), 'consultation.start')).toBe('permission_denied');
    expect(code(as('service', 's1'), 'consultation.cancel')).toBe('allowed');
  });
});
