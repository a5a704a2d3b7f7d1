import { timestampDate } from '@bufbuild/protobuf/wkt';
import { ConsultationStatus } from '../../gen/video/v1/consultation_pb.js';
import { describeError, type VideoClient } from './api.js';
import { clockTime, h, show } from './dom.js';

/**
 * The user's consultations that are not over yet (newest slot first), each with a button
 * that opens it, and a field to open one by its id.
 */
export function upcomingList(
  client: VideoClient,
  open: (consultationId: string) => void,
): HTMLElement {
  const list = h('ul', { 'data-test': 'upcoming' }, h('li', { class: 'muted' }, 'loading…'));
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
  client
    .listConsultationHistory({
      statuses: [
        ConsultationStatus.SCHEDULED,
        ConsultationStatus.WAITING,
        ConsultationStatus.IN_PROGRESS,
      ],
      pageSize: 20,
    })
    .then(
      ({ consultations }) =>
        show(
          list,
          ...(consultations.length === 0 ? [h('li', { class: 'muted' }, 'none')] : []),
          ...consultations.map((c) =>
            h(
              'li',
              {},
              `${clockTime(c.scheduledStart && timestampDate(c.scheduledStart))} · patient ${c.patientId} · doctor ${c.doctorId} `,
              h('button', { type: 'button', onclick: () => open(c.id) }, 'Open'),
            ),
          ),
        ),
      (error: unknown) => show(list, h('li', { class: 'error' }, describeError(error))),
    );
  return h('section', {}, h('h2', {}, 'Your consultations'), list, byId);
}
