import { ConsultationStatus, ParticipantRole } from '../../gen/video/v1/consultation_pb.js';
import type { WaitingPatient } from '../../gen/video/v1/video_service_pb.js';
import { attempt, follow, type Session } from './api.js';
import { type Act, consultationPanel, participantOf } from './consultation.js';
import { duration, h, show } from './dom.js';
import { upcomingList } from './upcoming.js';

/**
 * The doctor's page (nurses and clinic admins see the clinic's): the live waiting room,
 * letting a patient in, and each consultation opened from it, with starting, the join
 * link, ending, who is in the call and the technical issues reported.
 */
export function doctorView(root: Element, session: Session): void {
  const consultations = h('div', { 'data-test': 'consultations' });
  const opened = new Map<string, HTMLElement>();
  const open = (consultationId: string) => {
    const already = opened.get(consultationId);
    if (already) {
      already.scrollIntoView({ behavior: 'smooth' });
      return;
    }
    const panel = doctorPanel(session, consultationId, () => {
      panel.remove();
      opened.delete(consultationId);
    });
    opened.set(consultationId, panel);
    consultations.prepend(panel);
  };
  show(root, waitingRoom(session, open), consultations, upcomingList(session, 'doctor', open));
}

function waitingRoom(session: Session, open: (consultationId: string) => void): HTMLElement {
  const rows = h('tbody');
  const state = h('span', { class: 'muted' }, 'connecting…');
  const error = h('p', { class: 'error', role: 'alert' });
  let patients: readonly WaitingPatient[] | undefined;
  /** When the list arrived: waiting times grow from there, on the page's own clock. */
  let receivedAt = Date.now();

  const admit = async (p: WaitingPatient) => {
    show(error);
    const failed = await attempt(session, () =>
      session.client.admitPatient({ consultationId: p.consultationId }),
    );
    if (failed) show(error, `Let in: ${failed}`);
    else open(p.consultationId);
  };
  const render = () => {
    const elapsed = (Date.now() - receivedAt) / 1000;
    const note = (text: string) => h('tr', {}, h('td', { colspan: 4, class: 'muted' }, text));
    show(
      rows,
      ...(patients === undefined
        ? [note('…')]
        : patients.length === 0
          ? [note('Nobody is waiting.')]
          : patients.map((p) =>
              h(
                'tr',
                { 'data-test': 'waiting-patient', 'data-consultation': p.consultationId },
                h('td', {}, p.queuePosition),
                h('td', {}, p.patientId),
                h('td', {}, duration(p.waitedSeconds + elapsed)),
                h(
                  'td',
                  {},
                  h('button', { type: 'button', onclick: () => void admit(p) }, 'Let in'),
                  ' ',
                  h(
                    'button',
                    { type: 'button', class: 'quiet', onclick: () => open(p.consultationId) },
                    'Open',
                  ),
                ),
              ),
            )),
    );
  };
  const ticking = setInterval(render, 1_000);
  session.signal.addEventListener('abort', () => clearInterval(ticking), { once: true });

  const section = h(
    'section',
    { 'data-test': 'waiting-room' },
    h('h2', {}, 'Waiting room ', state),
    h(
      'table',
      {},
      h(
        'thead',
        {},
        h('tr', {}, h('th', {}, '#'), h('th', {}, 'Patient'), h('th', {}, 'Waiting'), h('th')),
      ),
      rows,
    ),
    error,
  );
  void follow(
    session,
    (abort) => session.client.watchWaitingRoom({}, { signal: abort }),
    (message) => {
      if (message.keepAlive) return;
      patients = message.patients;
      receivedAt = Date.now();
      render();
    },
    (s) => {
      // Out of date while the stream is down: greyed out, buttons off.
      section.classList.toggle('stale', s.kind !== 'live');
      state.className = s.kind === 'live' ? 'live' : 'offline';
      show(state, s.kind === 'live' ? 'up to date' : 'reason' in s ? s.reason : 'closed');
    },
    // The waiting room is never done: a stream the service ended is opened again.
    () => false,
  );
  render();
  return section;
}

function doctorPanel(session: Session, consultationId: string, close: () => void) {
  const { client } = session;
  const button = (label: string, test: string, act: Act, call: () => Promise<unknown>) =>
    h('button', { type: 'button', 'data-test': test, onclick: () => act(label, call) }, label);
  return consultationPanel({
    session,
    consultationId,
    viewer: 'doctor',
    leave: { label: 'Close', go: close },
    mayJoin: ({ consultation }) => consultation.status === ConsultationStatus.IN_PROGRESS,
    actions: ({ consultation: c }, act) => {
      const patient = participantOf(c, ParticipantRole.PATIENT);
      const waiting = Boolean(patient?.checkedInAt && !patient.admittedAt);
      return [
        waiting && button('Let in', 'admit', act, () => client.admitPatient({ consultationId })),
        c.status !== ConsultationStatus.IN_PROGRESS &&
          button('Start', 'start', act, () => client.startConsultation({ consultationId })),
        c.status === ConsultationStatus.IN_PROGRESS &&
          button('End', 'end', act, async () => {
            if (confirm('End this consultation for both of you?')) {
              await client.endConsultation({ consultationId });
            }
          }),
      ].filter((b): b is HTMLButtonElement => b !== false);
    },
  });
}
