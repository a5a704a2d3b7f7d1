import { timestampDate } from '@bufbuild/protobuf/wkt';
import {
  type Consultation,
  ConsultationStatus,
  type Participant,
  ParticipantRole,
} from '../../gen/video/v1/consultation_pb.js';
import { type TechnicalIssue, TechnicalIssueType } from '../../gen/video/v1/video_service_pb.js';
import { describeError, follow, type StreamState, type VideoClient } from './api.js';
import { clockTime, h, show } from './dom.js';

/** What the page knows of one consultation, from its watch stream. */
export interface ConsultationState {
  readonly consultation: Consultation;
  readonly technicalIssues: readonly TechnicalIssue[];
  /** The patient's place in the doctor's queue while they wait; 0 when they do not. */
  readonly queuePosition: number;
}

/** What the doctor's and the patient's views add to the shared panel. */
export interface PanelOptions {
  readonly client: VideoClient;
  readonly consultationId: string;
  /** The part the user plays: the panel words things for them. */
  readonly viewer: 'doctor' | 'patient';
  /** The buttons that fit the consultation as it is now. */
  actions(state: ConsultationState, act: Act): readonly Node[];
  /** Whether the user may have a join link now (it is fetched once, when this first holds). */
  mayJoin(state: ConsultationState): boolean;
  /** Forms that stay put while the consultation changes (their typed text is kept). */
  readonly forms?: (act: Act) => readonly Node[];
  readonly signal: AbortSignal;
}

/** Runs one call for a button or form: disables nothing, shows its error if it fails. */
export type Act = (what: string, call: () => Promise<unknown>) => Promise<void>;

export const FINAL = new Set([
  ConsultationStatus.ENDED,
  ConsultationStatus.CANCELLED,
  ConsultationStatus.NO_SHOW,
]);

const STATUS_TEXT: Record<ConsultationStatus, string> = {
  [ConsultationStatus.UNSPECIFIED]: 'Unknown',
  [ConsultationStatus.SCHEDULED]: 'Scheduled',
  [ConsultationStatus.WAITING]: 'Waiting room open',
  [ConsultationStatus.IN_PROGRESS]: 'In progress',
  [ConsultationStatus.ENDED]: 'Ended',
  [ConsultationStatus.CANCELLED]: 'Cancelled',
  [ConsultationStatus.NO_SHOW]: 'No-show',
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
 * One consultation, live: its status, who is connected, the patient's place in the
 * queue, the join link once the user may join, the technical issues reported, and the
 * actions the view offers. Follows WatchConsultation until the consultation reaches a
 * final state or the page closes the panel.
 */
export function consultationPanel(options: PanelOptions): HTMLElement {
  const { client, consultationId, signal } = options;
  const title = h('h2', {}, 'Consultation');
  const status = h('span', { class: 'status', 'data-test': 'status' }, '…');
  const stream = h('span', { class: 'muted', 'data-test': 'stream' }, 'connecting…');
  const queue = h('p', { 'data-test': 'queue' });
  const people = h('p', { 'data-test': 'participants' });
  const link = h('p', { 'data-test': 'join' });
  const actions = h('div', { class: 'actions' });
  const issues = h('ul', { 'data-test': 'issues' });
  const error = h('p', { class: 'error', 'data-test': 'error', role: 'alert' });
  let state: ConsultationState | undefined;
  let joining = false;

  const act: Act = async (what, call) => {
    show(error);
    try {
      await call();
    } catch (e) {
      show(error, `${what}: ${describeError(e)}`);
    }
  };

  /** Fetches the user's join link once, when they first may join. */
  async function join(current: ConsultationState) {
    if (joining || FINAL.has(current.consultation.status) || !options.mayJoin(current)) return;
    joining = true;
    await act('Join link', async () => {
      const { joinUrl } = await client.generateToken({ consultationId });
      show(
        link,
        h(
          'a',
          {
            class: 'join',
            href: joinUrl,
            target: '_blank',
            rel: 'noopener',
            'data-test': 'join-link',
          },
          'Join the video call',
        ),
      );
    });
  }

  function render(current: ConsultationState) {
    const c = current.consultation;
    show(
      title,
      `Consultation at ${clockTime(c.scheduledStart && timestampDate(c.scheduledStart))}`,
    );
    show(status, STATUS_TEXT[c.status]);
    show(queue, queueText(current, options.viewer));
    show(
      people,
      ...c.participants.flatMap((p, i) => (i === 0 ? [presence(p)] : [' · ', presence(p)])),
    );
    show(actions, ...(FINAL.has(c.status) ? [] : options.actions(current, act)));
    if (FINAL.has(c.status)) show(link);
    show(
      issues,
      ...current.technicalIssues.map((issue) =>
        h(
          'li',
          {},
          `${clockTime(issue.reportedAt && timestampDate(issue.reportedAt))} · ${ISSUE_TEXT[issue.issueType]} · `,
          h('em', {}, issue.description || '(no description)'),
          ` — ${issue.reporterRole === ParticipantRole.DOCTOR ? 'doctor' : 'patient'}`,
        ),
      ),
    );
    void join(current);
  }

  function streamState(s: StreamState) {
    stream.className = s.kind === 'live' ? 'live' : s.kind === 'ended' ? 'muted' : 'offline';
    show(
      stream,
      s.kind === 'live'
        ? 'live'
        : s.kind === 'ended'
          ? 'closed'
          : s.kind === 'reconnecting'
            ? `reconnecting… (${s.reason})`
            : s.reason,
    );
  }

  void follow(
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
    signal,
  );

  return h(
    'section',
    { 'data-test': 'consultation', 'data-consultation': consultationId },
    title,
    h('p', {}, status, ' ', stream),
    queue,
    people,
    link,
    actions,
    ...(options.forms?.(act) ?? []),
    h('h3', {}, 'Technical issues'),
    issues,
    error,
  );
}

function queueText(state: ConsultationState, viewer: 'doctor' | 'patient'): string {
  const patient = participantOf(state.consultation, ParticipantRole.PATIENT);
  if (state.queuePosition > 0) {
    const place = state.queuePosition === 1 ? 'next' : `number ${state.queuePosition}`;
    return viewer === 'patient'
      ? `You are ${place} in the queue. Please wait for the doctor to let you in.`
      : `The patient waits: ${place} in your queue.`;
  }
  if (patient?.admittedAt && !FINAL.has(state.consultation.status)) {
    return viewer === 'patient' ? 'The doctor has let you in.' : 'The patient has been let in.';
  }
  return '';
}

function presence(p: Participant): HTMLElement {
  const who = p.role === ParticipantRole.DOCTOR ? 'Doctor' : 'Patient';
  return h(
    'span',
    { class: p.connected ? 'live' : 'muted', 'data-test': `presence-${who.toLowerCase()}` },
    `${who} ${p.connected ? 'in the call' : 'not in the call'}`,
  );
}
