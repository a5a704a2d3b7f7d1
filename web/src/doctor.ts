import { ConsultationStatus, ParticipantRole } from '../../gen/video/v1/consultation_pb.js';
import type { WaitingPatient } from '../../gen/video/v1/video_service_pb.js';
import { describeError, follow, type VideoClient } from './api.js';
import { type Act, consultationPanel, participantOf } from './consultation.js';
import { duration, h, show } from './dom.js';
import { upcomingList } from './upcoming.js';

/**
 * The doctor's page (nurses and clinic admins see the clinic's): the live waiting room,
 * letting a patient in, and each consultation opened from it, with starting, the join
 * link, ending, who is in the call and the technical issues reported.
 */
export function doctorView(root: Element, client: VideoClient, signal: AbortSignal): void {
  const consultations = h('div', { 'data-test': 'consultations' });
  const opened = new Set<string>();
  const open = (consultationId: string) => {
    if (opened.has(consultationId)) return;
    opened.add(consultationId);
    consultations.prepend(doctorPanel(client, consultationId, signal));
  };
  show(root, waitingRoom(client, open, signal), consultations, upcomingList(client, open));
}

function waitingRoom(
  client: VideoClient,
  open: (consultationId: string) => void,
  signal: AbortSignal,
): HTMLElement {
  const rows = h('tbody');
  const state = h('span', { class: 'muted' }, 'connecting…');
  const error = h('p', { class: 'error', role: 'alert' });
  let patients: readonly WaitingPatient[] = [];
  /** When the list arrived: waiting times grow from there, on the page's own clock. */
  let receivedAt = Date.now();

  const admit = async (p: WaitingPatient) => {
    show(error);
    try {
      await client.admitPatient({ consultationId: p.consultationId });
      open(p.consultationId);
    } catch (e) {
      show(error, `Let in: ${describeError(e)}`);
    }
  };
  const render = () => {
    const elapsed = (Date.now() - receivedAt) / 1000;
    show(
      rows,
      ...(patients.length === 0
        ? [h('tr', {}, h('td', { colspan: 4, class: 'muted' }, 'Nobody is waiting.'))]
        : patients.map((p) =>
            h(
              'tr',
              { 'data-test': 'waiting-patient', 'data-consultation': p.consultationId },
              h('td', {}, p.queuePosition),
              h('td', {}, p.patientId),
              h('td', {}, duration(p.waitedSeconds + elapsed)),
              h('td', {}, h('button', { type: 'button', onclick: () => void admit(p) }, 'Let in')),
            ),
          )),
    );
  };
  const ticking = setInterval(render, 1_000);
  signal.addEventListener('abort', () => clearInterval(ticking), { once: true });

  void follow(
    (abort) => client.watchWaitingRoom({}, { signal: abort }),
    (message) => {
      if (message.keepAlive) return;
      patients = message.patients;
      receivedAt = Date.now();
      render();
    },
    (s) => {
      state.className = s.kind === 'live' ? 'live' : 'offline';
      show(state, s.kind === 'live' ? 'live' : 'reason' in s ? s.reason : 'closed');
    },
    signal,
  );
  return h(
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
}

function doctorPanel(client: VideoClient, consultationId: string, signal: AbortSignal) {
  const button = (label: string, test: string, act: Act, call: () => Promise<unknown>) =>
    h('button', { type: 'button', 'data-test': test, onclick: () => act(label, call) }, label);
  return consultationPanel({
    client,
    consultationId,
    viewer: 'doctor',
    signal,
    mayJoin: ({ consultation }) => consultation.status === ConsultationStatus.IN_PROGRESS,
    actions: ({ consultation: c }, act) => {
      const patient = participantOf(c, ParticipantRole.PATIENT);
      const waiting = Boolean(patient?.checkedInAt && !patient.admittedAt);
      return [
        waiting && button('Let in', 'admit', act, () => client.admitPatient({ consultationId })),
        c.status !== ConsultationStatus.IN_PROGRESS &&
          button('Start', 'start', act, () => client.startConsultation({ consultationId })),
        c.status === ConsultationStatus.IN_PROGRESS &&
          button('End', 'end', act, () => client.endConsultation({ consultationId })),
      ].filter((b): b is HTMLButtonElement => b !== false);
    },
  });
}
