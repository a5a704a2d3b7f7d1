import { randomUUID } from 'node:crypto';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { TechnicalIssueKind } from '../../domain/consultation.js';
import { failedPrecondition } from '../../domain/errors.js';
import { TechnicalIssueSchema } from '../../persistence/entities.js';
import type { Caller } from '../audit.js';
import { callerRole, loadConsultation } from '../consultation-access.js';
import { addEvent, eventScope } from '../events.js';
import { toProtoIssueType } from '../proto-enums.js';
import { audited, retriedOnDuplicateKey, type UseCaseDeps } from '../use-case.js';

export interface ReportTechnicalIssueRequest {
  readonly consultationId: string;
  readonly issueType: TechnicalIssueKind;
  readonly description: string;
  /** '' for none; else a retry with the same key answers the first report. */
  readonly idempotencyKey: string;
}

/** ReportTechnicalIssue: a participant reports trouble with the call, once per idempotency key. */
export async function reportTechnicalIssue(
  deps: UseCaseDeps,
  caller: Caller,
  request: ReportTechnicalIssueRequest,
): Promise<{ issueId: string; reportedAt: Date }> {
  const { principal } = caller;
  const action = 'consultation.report_issue';
  return retriedOnDuplicateKey(() =>
    audited(deps, caller, action, request.consultationId, async (em) => {
      const c = await loadConsultation(em, principal, request.consultationId, action);
      const role = callerRole(principal, c);
      if (request.idempotencyKey !== '') {
        const earlier = await em.findOne(TechnicalIssueSchema, {
          consultation: c,
          reporterId: principal.userId,
          idempotencyKey: request.idempotencyKey,
        });
        if (earlier) return { issueId: earlier.id, reportedAt: earlier.reportedAt };
      }
      if (c.status === 'cancelled') throw failedPrecondition('the consultation is cancelled');
      // A report is a change of the consultation its watchers see: bump its version.
      c.updatedAt = deps.clock.now();
      const issue = em.create(TechnicalIssueSchema, {
        id: randomUUID(),
        consultation: c,
        clinicId: c.clinicId,
        reporterId: principal.userId,
        reporterRole: role,
        issueType: request.issueType,
        description: request.description,
        reportedAt: deps.clock.now(),
        idempotencyKey: request.idempotencyKey || null,
      });
      addEvent(
        em,
        'video.technical.issue.reported',
        eventScope(c),
        {
          ...eventScope(c),
          userId: principal.userId,
          issueType: toProtoIssueType(request.issueType),
          description: request.description,
          issueId: issue.id,
          at: timestampFromDate(issue.reportedAt),
        },
        issue.reportedAt,
      );
      return { issueId: issue.id, reportedAt: issue.reportedAt };
    }),
  );
}
