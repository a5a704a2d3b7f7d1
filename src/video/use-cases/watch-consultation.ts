import {
  FINAL_STATUSES,
  type ParticipantRole,
  type TechnicalIssueKind,
} from '../../domain/consultation.js';
import { isDatabaseUnavailable } from '../../persistence/database-errors.js';
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
  const watch = openWatch(deps.watching, caller.principal, signal, (feed, listener) =>
    // Listening before the first read: a change committed meanwhile is not missed.
    feed.watchConsultation(consultationId, listener),
  );
  /** While the patient waits, the doctor's other consultations move them in the queue. */
  let queue: (() => void) | undefined;
  const followQueue = (view: ConsultationView, place: number) => {
    if (place > 0 && !queue) {
      queue = watch.also((feed, listener) =>
        feed.watchDoctor(view.clinicId, view.doctorId, listener),
      );
    } else if (place === 0 && queue) {
      queue();
      queue = undefined;
    }
  };
  // Nothing here holds a database session between messages: an open stream costs little.
  try {
    let view = await getConsultationStatus(deps, caller, request);
    let place = await placeInQueue(deps, view);
    followQueue(view, place);
    yield await changed(deps, view, place);
    while (!FINAL_STATUSES.has(view.status)) {
      const step = await watch.next();
      if (step === 'end') return;
      if (step === 'keep-alive') {
        watch.keptAlive();
        yield { kind: 'keep-alive' };
        continue;
      }
      // The access rules again, as for every read: a caller who may no longer see it is
      // answered NOT_FOUND, and the stream ends.
      let latest: ConsultationView;
      let latestPlace: number;
      try {
        latest = toView(
          await loadConsultation(
            deps.orm.em.fork(),
            caller.principal,
            consultationId,
            'consultation.read',
          ),
        );
        latestPlace = await placeInQueue(deps, latest);
      } catch (error) {
        // A database blip ends no stream: read again a moment later.
        if (!isDatabaseUnavailable(error)) throw error;
        watch.retryLater();
        continue;
      }
      followQueue(latest, latestPlace);
      if (latest.version > view.version) {
        view = latest;
        place = latestPlace;
        watch.sent();
        yield await changed(deps, view, place);
      } else if (latestPlace !== place) {
        place = latestPlace;
        watch.sent();
        yield { kind: 'queue', queuePosition: place };
      }
    }
  } finally {
    watch.close();
  }
}

/** The message of a changed consultation: the view, its latest issues, the patient's place. */
async function changed(
  deps: UseCaseDeps,
  view: ConsultationView,
  place: number,
): Promise<ConsultationUpdate> {
  return {
    kind: 'changed',
    consultation: view,
    technicalIssues: await issues(deps, view),
    queuePosition: place,
  };
}

/** The patient's place in the doctor's queue while they wait; 0 when they do not. */
async function placeInQueue(deps: UseCaseDeps, view: ConsultationView): Promise<number> {
  const patient = view.participants.find((p) => p.role === 'patient');
  if (!patient?.checkedInAt || patient.admittedAt || !WAITING_STATUSES.includes(view.status)) {
    return 0;
  }
  return queuePosition(deps.orm.em.fork(), view, patient.checkedInAt);
}

/** The latest technical issues reported on the consultation, oldest first. */
async function issues(deps: UseCaseDeps, view: ConsultationView): Promise<TechnicalIssueView[]> {
  const latest = await deps.orm.em
    .fork()
    .find(
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
