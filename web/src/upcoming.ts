import { timestampDate, timestampFromDate } from '@bufbuild/protobuf/wkt';
import { type Consultation, ConsultationStatus } from '../../gen/video/v1/consultation_pb.js';
import { attempt, type Session } from './api.js';
import { h, show, when } from './dom.js';

const STATUS: Partial<Record<ConsultationStatus, string>> = {
  [ConsultationStatus.SCHEDULED]: 'scheduled',
  [ConsultationStatus.WAITING]: 'waiting room open',
  [ConsultationStatus.IN_PROGRESS]: 'in progress',
};

/**
 * The user's consultations that are not over yet (soonest first), each with a button that
 * opens it, a Refresh button (the list is read when shown, not followed live), and a field
 * to open one by its id.
 */
export function upcomingList(
  session: Session,
  viewer: 'doctor' | 'patient',
  open: (consultationId: string) => void,
): HTMLElement {
  const list = h('ul', { 'data-test': 'upcoming' });
  const error = h('p', { class: 'error', role: 'alert' });
  const item = (c: Consultation) =>
    h(
      'li',
      {},
      `${when(c.scheduledStart && timestampDate(c.scheduledStart))} · `,
      viewer === 'doctor' ? `patient ${c.patientId}` : `doctor ${c.doctorId}`,
      ` · ${STATUS[c.status] ?? ''} `,
      h('button', { type: 'button', onclick: () => open(c.id) }, 'Open'),
    );
  const load = async () => {
    show(list, h('li', { class: 'muted' }, 'loading…'));
    show(error);
    const failed = await attempt(session, async () => {
      const { consultations } = await session.client.listConsultationHistory({
        statuses: [
          ConsultationStatus.SCHEDULED,
          ConsultationStatus.WAITING,
          ConsultationStatus.IN_PROGRESS,
        ],
        // From half a day back: a consultation under way now is listed, last year's are not.
        scheduledFrom: timestampFromDate(new Date(Date.now() - 12 * 3_600_000)),
        pageSize: 50,
      });
      // The history is newest first; what comes next is what matters here.
      const soonest = [...consultations].reverse();
      show(
        list,
        ...(soonest.length === 0 ? [h('li', { class: 'muted' }, 'none')] : soonest.map(item)),
      );
    });
    if (failed) {
      show(list);
      show(error, failed);
    }
  };
  void load();
  const id = h('input', { type: 'text', name: 'consultation', placeholder: 'consultation id' });
  const byId = h(
    'form',
    {
      onsubmit: (event: Event) => {
        event.preventDefault();
        if (id.value.trim()) open(id.value.trim());
      },
    },
    id,
    h('button', { type: 'submit' }, 'Open'),
  );
  return h(
    'section',
    {},
    h(
      'h2',
      {},
      'Your consultations ',
      h('button', { type: 'button', class: 'quiet', onclick: () => void load() }, 'Refresh'),
    ),
    list,
    error,
    byId,
  );
}
