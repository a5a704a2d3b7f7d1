import type { EntityManager } from '@mikro-orm/core';
import {
  FINAL_STATUSES,
  type ParticipantRole,
  type TechnicalIssueKind,
} from '../../domain/consultation.js';
import { TechnicalIssueSchema } from '../../persistence/entities.js';
import type { Caller } from '../audit.js';
import { loadConsultation } from '../consultation-access.js';
import type { UseCaseDeps } from '../use-case.js';
import { type ConsultationView, toView } from '../views.js';
import { queuePosition, WAITING_STATUSES } from '../waiting-room.js';
import { openWatch } from '../watching.js';
import { getConsultationStatus } from './get-consultation-status.js';

/** A technical problem as the watch stream shows it to the consultation's participants. */
export interface TechnicalIssueView {
  readonly issueId: string;
  readonly reporterId: string;
  readonly reporterRole: ParticipantRole;
  readonly issueType: TechnicalIssueKind;
  readonly description: string;
  readonly reportedAt: Date;
}

/** What one message of the stream says. */
export type ConsultationUpdate =
  /** The consultation changed (a newer version): all of it, its issues, the patient's place. */
  | {
      readonly kind: 'changed';
      readonly consultation: ConsultationView;
      readonly technicalIssues: readonly TechnicalIssueView[];
      readonly queuePosition: number;
    }
  /** Only the waiting patient's place moved: someone ahead was admitted, left or went. */
  | { readonly kind: 'queue'; readonly queuePosition: number }
  | { readonly kind: 'keep-alive' };

/** The technical issues a view carries: the latest this many, oldest first. */
const ISSUES_SHOWN = 20;

/**
 * WatchConsultation: the consultation as GetConsultationStatus answers it, then again
 * after every committed change (status, admission, attendance, recording, a technical
 * issue), whichever copy of the service made it; each view newer than the one before
 * (changes committed in quick succession may come as one view, the newest). While the
 * patient waits, a move of their place in the queue comes too, and a quiet stream sends
 * keep-alives. The stream ends after a final state (ended, cancelled, no-show), with
 * NOT_FOUND once the caller may no longer see the consultation, with UNAUTHENTICATED when
 * the caller's token expires, and cleanly when the service stops or the caller goes. The
 * opening is audited once, as a read.
 */
export async function* watchConsultation(
  deps: UseCaseDeps,
  caller: Caller,
  request: { readonly consultationId: string },
  signal: AbortSignal,
): AsyncGenerator<ConsultationUpdate> {
  const { consultationId } = request;
  /** The doctor whose queue the patient waits in, while they wait: their moves wake us. */
  let waitingFor: string | undefined;
  const watch = openWatch(deps.watching, caller.principal, signal, (feed, listener) => {
    // Listening before the first read: a change committed meanwhile is not missed.
    const own = feed.watchConsultation(consultationId, listener);
    const queue = feed.watchClinic(caller.principal.clinicId, {
      change(change) {
        if (change.id !== consultationId && change.doctorId === waitingFor) listener.change(change);
      },
      resync() {}, // the consultation's own listener is told already
    });
    return () => {
      own();
      queue();
    };
  });
  try {
    let view = await getConsultationStatus(deps, caller, request);
    const em = deps.orm.em.fork();
    let place = await placeInQueue(em, view);
    waitingFor = place > 0 ? view.doctorId : undefined;
    yield {
      kind: 'changed',
      consultation: view,
      technicalIssues: await issues(em, view),
      queuePosition: place,
    };
    while (!FINAL_STATUSES.has(view.status)) {
      const step = await watch.next();
      if (step === 'end') return;
      if (step === 'keep-alive') {
        watch.keptAlive();
        yield { kind: 'keep-alive' };
        continue;
      }
      const em = deps.orm.em.fork();
      // The access rules again, as for every read: a caller who may no longer see it is
      // answered NOT_FOUND, and the stream ends.
      const current = toView(
        await loadConsultation(em, caller.principal, consultationId, 'consultation.read'),
      );
      const newPlace = await placeInQueue(em, current);
      waitingFor = newPlace > 0 ? current.doctorId : undefined;
      if (current.version > view.version) {
        view = current;
        place = newPlace;
        watch.sent();
        yield {
          kind: 'changed',
          consultation: view,
          technicalIssues: await issues(em, view),
          queuePosition: place,
        };
      } else if (newPlace !== place) {
        place = newPlace;
        watch.sent();
        yield { kind: 'queue', queuePosition: place };
      }
    }
  } finally {
    watch.close();
  }
}

/** The patient's place in the doctor's queue while they wait; 0 when they do not. */
async function placeInQueue(em: EntityManager, view: ConsultationView): Promise<number> {
  const patient = view.participants.find((p) => p.role === 'patient');
  if (!patient?.checkedInAt || patient.admittedAt || !WAITING_STATUSES.includes(view.status)) {
    return 0;
  }
  return queuePosition(em, view, patient.checkedInAt);
}

/** The latest technical issues reported on the consultation, oldest first. */
async function issues(em: EntityManager, view: ConsultationView): Promise<TechnicalIssueView[]> {
  const latest = await em.find(
    TechnicalIssueSchema,
    { consultation: view.id },
    { orderBy: { reportedAt: 'desc', id: 'desc' }, limit: ISSUES_SHOWN },
  );
  return latest.reverse().map((issue) => ({
    issueId: issue.id,
    reporterId: issue.reporterId,
    reporterRole: issue.reporterRole,
    issueType: issue.issueType,
    description: issue.description,
    reportedAt: issue.reportedAt,
  }));
}
