import { timestampDate } from '@bufbuild/protobuf/wkt';
import {
  type Consultation,
  ConsultationStatus,
  type Participant,
  ParticipantRole,
  Provider,
} from '../../gen/video/v1/consultation_pb.js';
import { type TechnicalIssue, TechnicalIssueType } from '../../gen/video/v1/video_service_pb.js';
import { attempt, follow, type Session, type StreamState } from './api.js';
import { h, show, when } from './dom.js';

/** What the page knows of one consultation, from its watch stream. */
export interface ConsultationState {
  readonly consultation: Consultation;
  readonly technicalIssues: readonly TechnicalIssue[];
  /** The patient's place in the doctor's queue while they wait; 0 when they do not. */
  readonly queuePosition: number;
}

/** Who looks at the panel: it words things for them. */
export type Viewer = 'doctor' | 'patient';

/** What the doctor's and the patient's views add to the shared panel. */
export interface PanelOptions {
  readonly session: Session;
  readonly consultationId: string;
  readonly viewer: Viewer;
  /** The buttons that fit the consultation as it is now. */
  actions(state: ConsultationState, act: Act): readonly Node[];
  /** Whether the user may have a join link now (it is fetched once, when this first holds). */
  mayJoin(state: ConsultationState): boolean;
  /** Forms that stay put while the consultation changes (their typed text is kept). */
  readonly forms?: (act: Act) => readonly Node[];
  /** A button at the top: back to a list, or closing the panel. */
  readonly leave: { readonly label: string; go(): void };
}

/** Runs one call for a button or form, and shows what went wrong if it fails. */
export type Act = (what: string, call: () => Promise<unknown>) => Promise<void>;

export const FINAL = new Set([
  ConsultationStatus.ENDED,
  ConsultationStatus.CANCELLED,
  ConsultationStatus.NO_SHOW,
]);

const FINAL_TEXT: Partial<Record<ConsultationStatus, string>> = {
  [ConsultationStatus.ENDED]: 'This consultation has ended.',
  [ConsultationStatus.CANCELLED]: 'This consultation was cancelled.',
  [ConsultationStatus.NO_SHOW]: 'This consultation was closed: the patient did not come.',
};

const ISSUE_TEXT: Record<TechnicalIssueType, string> = {
  [TechnicalIssueType.UNSPECIFIED]: 'Problem',
  [TechnicalIssueType.AUDIO]: 'Sound',
  [TechnicalIssueType.VIDEO]: 'Picture',
  [TechnicalIssueType.CONNECTION]: 'Connection',
  [TechnicalIssueType.OTHER]: 'Other',
};

export const participantOf = (c: Consultation, role: ParticipantRole): Participant | undefined =>
  c.participants.find((p) => p.role === role);

/**
 * One consultation, live: its status, the patient's place in the queue, who is in the
 * call, the join link once the user may join, the technical issues reported, and the
 * actions the view offers. Follows WatchConsultation until the consultation reaches a
 * final state or the panel is left; while the stream is down, what it shows is greyed out
 * and its buttons are off.
 */
export function consultationPanel(options: PanelOptions): HTMLElement {
  const { session, consultationId, viewer } = options;
  const { client } = session;
  const closed = new AbortController();
  const signal = AbortSignal.any([session.signal, closed.signal]);
  const title = h('h2', {}, 'Consultation');
  const status = h('span', { class: 'status', 'data-test': 'status' }, '…');
  const stream = h('span', { class: 'muted', 'data-test': 'stream' }, 'connecting…');
  const queue = h('p', { 'data-test': 'queue' });
  const people = h('p', { 'data-test': 'participants' });
  const link = h('p', { 'data-test': 'join' });
  const actions = h('div', { class: 'actions' });
  const error = h('p', { class: 'error', 'data-test': 'error', role: 'alert' });
  const forms = h('div');
  const issues = h('ul', { 'data-test': 'issues' });
  let state: ConsultationState | undefined;
  let joining = false;

  const act: Act = async (what, call) => {
    show(error);
    const failed = await attempt(session, call);
    if (failed) show(error, `${what}: ${failed}`);
  };
  show(forms, ...(options.forms?.(act) ?? []));

  /** Fetches the user's join link once, when they first may join. */
  async function join(current: ConsultationState) {
    if (joining || !options.mayJoin(current)) return;
    joining = true;
    await act('Join link', async () => {
      const { joinUrl } = await client.generateToken({ consultationId });
      const attributes = { href: joinUrl, target: '_blank', rel: 'noopener' };
      show(
        link,
        h('a', { ...attributes, class: 'join', 'data-test': 'join-link' }, 'Join the video call'),
      );
    });
  }

  function render(current: ConsultationState) {
    const c = current.consultation;
    const final = FINAL.has(c.status);
    const start = c.scheduledStart && timestampDate(c.scheduledStart);
    const other = viewer === 'doctor' ? `with ${c.patientId}` : `with doctor ${c.doctorId}`;
    show(title, `Consultation ${when(start)} ${other}`);
    show(status, statusText(c));
    show(queue, final ? FINAL_TEXT[c.status] : queueText(current, viewer));
    show(people, ...(final ? [] : presence(c, viewer)));
    show(actions, ...(final ? [] : options.actions(current, act)));
    if (final) {
      show(link);
      show(forms);
      stream.hidden = true;
    } else {
      void join(current);
    }
    show(
      issues,
      ...current.technicalIssues.map((issue) =>
        h(
          'li',
          {},
          `${when(issue.reportedAt && timestampDate(issue.reportedAt))} · ${ISSUE_TEXT[issue.issueType]} · `,
          h('em', {}, issue.description || '(no description)'),
          ` — ${issue.reporterRole === ParticipantRole.DOCTOR ? 'doctor' : 'patient'}`,
        ),
      ),
      current.technicalIssues.length === 0 && h('li', { class: 'muted' }, 'none reported'),
    );
  }

  const section = h(
    'section',
    { 'data-test': 'consultation', 'data-consultation': consultationId },
    h(
      'p',
      { class: 'actions' },
      h(
        'button',
        {
          type: 'button',
          class: 'quiet',
          onclick: () => {
            closed.abort();
            options.leave.go();
          },
        },
        options.leave.label,
      ),
    ),
    title,
    h('p', {}, status, ' ', stream),
    h('div', { class: 'data' }, queue, people, link, actions),
    error,
    forms,
    h('h3', {}, 'Technical issues'),
    issues,
  );

  function streamState(s: StreamState) {
    // Greyed out, buttons off: what the panel shows may be out of date.
    section.classList.toggle('stale', s.kind === 'reconnecting' || s.kind === 'failed');
    stream.className = s.kind === 'live' ? 'live' : s.kind === 'ended' ? 'muted' : 'offline';
    show(
      stream,
      s.kind === 'live'
        ? 'up to date'
        : s.kind === 'ended'
          ? ''
          : s.kind === 'reconnecting'
            ? `reconnecting… (${s.reason})`
            : s.reason,
    );
  }

  void follow(
    session,
    (abort) => client.watchConsultation({ consultationId }, { signal: abort }),
    (message) => {
      if (message.keepAlive) return;
      state = message.consultation
        ? {
            consultation: message.consultation,
            technicalIssues: message.technicalIssues,
            queuePosition: message.queuePosition,
          }
        : state && { ...state, queuePosition: message.queuePosition };
      if (state) render(state);
    },
    streamState,
    // The stream ends by itself after a final state; any other end is the service's.
    () => state !== undefined && FINAL.has(state.consultation.status),
    signal,
  );
  return section;
}

function statusText(c: Consultation): string {
  const patient = participantOf(c, ParticipantRole.PATIENT);
  switch (c.status) {
    case ConsultationStatus.SCHEDULED:
      return 'Scheduled';
    case ConsultationStatus.WAITING:
      return patient?.admittedAt
        ? 'Let in'
        : patient?.checkedInAt
          ? 'Waiting'
          : 'Waiting room open';
    case ConsultationStatus.IN_PROGRESS:
      return 'In progress';
    case ConsultationStatus.ENDED:
      return 'Ended';
    case ConsultationStatus.CANCELLED:
      return 'Cancelled';
    case ConsultationStatus.NO_SHOW:
      return 'No-show';
    default:
      return 'Unknown';
  }
}

function queueText(state: ConsultationState, viewer: Viewer): string {
  const c = state.consultation;
  const patient = participantOf(c, ParticipantRole.PATIENT);
  const started = c.status === ConsultationStatus.IN_PROGRESS;
  if (viewer === 'patient') {
    if (started) return 'The doctor has started the consultation: join the video call.';
    if (patient?.admittedAt) return 'The doctor has let you in: join the video call.';
    if (state.queuePosition === 1) return 'You are next in the queue. The doctor will let you in.';
    if (state.queuePosition > 1) {
      return `You are number ${state.queuePosition} in the queue. The doctor will let you in.`;
    }
    return patient?.checkedInAt ? '' : 'Check in when you are ready; the doctor will let you in.';
  }
  if (patient?.admittedAt) return started ? '' : 'The patient has been let in.';
  if (state.queuePosition > 0) {
    const place = state.queuePosition === 1 ? 'next' : `number ${state.queuePosition}`;
    return `The patient waits: ${place} in your queue.`;
  }
  return patient?.checkedInAt ? '' : 'The patient has not checked in yet.';
}

/**
 * Who is in the call, as the provider reports it: OpenVidu tells the service who joins
 * and leaves; Jitsi does not, so nothing is shown for it rather than something wrong.
 */
function presence(c: Consultation, viewer: Viewer): (string | HTMLElement)[] {
  if (c.provider !== Provider.OPENVIDU) return [];
  return c.participants.flatMap((p, i) => {
    const mine = (viewer === 'doctor') === (p.role === ParticipantRole.DOCTOR);
    const who = mine ? 'You' : p.role === ParticipantRole.DOCTOR ? 'The doctor' : 'The patient';
    const role = p.role === ParticipantRole.DOCTOR ? 'doctor' : 'patient';
    const line = h(
      'span',
      { class: p.connected ? 'live' : 'muted', 'data-test': `presence-${role}` },
      `${who} ${mine ? 'are' : 'is'} ${p.connected ? 'in the call' : 'not in the call'}`,
    );
    return i === 0 ? [line] : [' · ', line];
  });
}
