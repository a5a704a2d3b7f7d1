import { authorize } from '../../domain/access.js';
import { notFound } from '../../domain/errors.js';
import { auditRow, type Caller } from '../audit.js';
import { readConsultationAudited } from '../consultation-read.js';
import { auditRefusals, type UseCaseDeps } from '../use-case.js';
import type { ConsultationView } from '../views.js';

/**
 * GetConsultationStatus, the most frequent call: one SQL statement reads the consultation
 * the caller may see and inserts the read's audit entry (consultation-read.ts).
 */
export async function getConsultationStatus(
  deps: UseCaseDeps,
  caller: Caller,
  request: { readonly consultationId: string },
): Promise<ConsultationView> {
  const { consultationId } = request;
  const action = 'consultation.read';
  return auditRefusals(deps, caller, action, consultationId, async () => {
    authorize(caller.principal, action);
    const record = { action, resourceType: 'consultation', resourceId: consultationId } as const;
    const view = await readConsultationAudited(
      deps.orm.em.fork(),
      caller.principal,
      consultationId,
      auditRow(caller, { ...record, outcome: 'allowed' }, deps.clock.now()),
    );
    if (!view) throw notFound('consultation');
    // The statement's WHERE clause is the policy's visibility rule written in SQL; the
    // policy itself has the last word, as after every other load.
    authorize(caller.principal, action, view);
    return view;
  });
}
