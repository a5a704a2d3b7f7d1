import {
  type ConsultationStatus,
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
  const sent: Sent = {
    version: 0,
    status: 'scheduled',
    place: 0,
    followQueue(view, place) {
      if (place > 0 && !queue) {
        queue = watch.also((feed, listener) =>
          feed.watchDoctor(view.clinicId, view.doctorId, listener),
        );
      } else if (place === 0 && queue) {
        queue();
        queue = undefined;
      }
    },
  };
  // Nothing here holds a database session between messages, nor a view: each message is
  // made by a function of its own, and only `sent` stays (a suspended generator keeps its
  // locals, and a thousand streams stay open for hours).
  try {
    yield await opening(deps, caller, request, sent);
    while (!FINAL_STATUSES.has(sent.status)) {
      const step = await watch.next();
      if (step === 'end') return;
      if (step === 'keep-alive') {
        watch.keptAlive();
        yield KEEP_ALIVE;
        continue;
      }
      let news: ConsultationUpdate | undefined;
      try {
        news = await readAgain(deps, caller, consultationId, sent);
      } catch (error) {
        // A database blip ends no stream: read again a moment later.
        if (!isDatabaseUnavailable(error)) throw error;
        watch.retryLater();
        continue;
      }
      if (news) {
        watch.sent();
        yield news;
      }
    }
  } finally {
    watch.close();
  }
}

const KEEP_ALIVE: ConsultationUpdate = { kind: 'keep-alive' };

/** What the stream last sent, and how it follows the queue while the patient waits. */
interface Sent {
  version: number;
  status: ConsultationStatus;
  place: number;
  followQueue(view: ConsultationView, place: number): void;
}

/** The first message: the consultation as GetConsultationStatus answers it (audited). */
async function opening(
  deps: UseCaseDeps,
  caller: Caller,
  request: { readonly consultationId: string },
  sent: Sent,
): Promise<ConsultationUpdate> {
  const view = await getConsultationStatus(deps, caller, request);
  return show(deps, view, await placeInQueue(deps, view), sent);
}

/**
 * The consultation read again after a wake-up, with the access rules again, as for every
 * read (a caller who may no longer see it is answered NOT_FOUND, and the stream ends): the
 * message to send, if there is news (a newer version, or only a new place in the queue).
 */
async function readAgain(
  deps: UseCaseDeps,
  caller: Caller,
  consultationId: string,
  sent: Sent,
): Promise<ConsultationUpdate | undefined> {
  const view = toView(
    await loadConsultation(
      deps.orm.em.fork(),
      caller.principal,
      consultationId,
      'consultation.read',
    ),
  );
  const place = await placeInQueue(deps, view);
  if (view.version > sent.version) return show(deps, view, place, sent);
  sent.followQueue(view, place);
  if (place === sent.place) return undefined;
  sent.place = place;
  return { kind: 'queue', queuePosition: place };
}

/** The message of a changed consultation: the view, its latest issues, the patient's place. */
async function show(
  deps: UseCaseDeps,
  view: ConsultationView,
  place: number,
  sent: Sent,
): Promise<ConsultationUpdate> {
  const technicalIssues = await latestTechnicalIssues(deps, view.id);
  // Only once the message is whole: a read that failed has sent nothing.
  sent.followQueue(view, place);
  sent.version = view.version;
  sent.status = view.status;
  sent.place = place;
  return { kind: 'changed', consultation: view, technicalIssues, queuePosition: place };
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
export async function latestTechnicalIssues(
  deps: UseCaseDeps,
  consultationId: string,
): Promise<TechnicalIssueView[]> {
  const latest = await deps.orm.em
    .fork()
    .find(
      TechnicalIssueSchema,
      { consultation: consultationId },
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
