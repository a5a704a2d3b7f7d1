import { ConsultationStatus, ParticipantRole } from '../../gen/video/v1/consultation_pb.js';
import { TechnicalIssueType } from '../../gen/video/v1/video_service_pb.js';
import type { Session } from './api.js';
import { type Act, consultationPanel, participantOf } from './consultation.js';
import { h, show } from './dom.js';
import { upcomingList } from './upcoming.js';

/**
 * The patient's page: their consultation (from `?consultation=` or picked from their
 * list), checking in, their live place in the queue, the join link once the doctor lets
 * them in, and reporting a problem or sharing an image.
 */
export function patientView(root: Element, session: Session, consultationId?: string): void {
  const list = () => show(root, upcomingList(session, 'patient', open));
  const open = (id: string) => show(root, patientPanel(session, id, list));
  if (consultationId) open(consultationId);
  else list();
}

function patientPanel(session: Session, consultationId: string, back: () => void) {
  const { client } = session;
  return consultationPanel({
    session,
    consultationId,
    viewer: 'patient',
    leave: { label: '← Your consultations', go: back },
    mayJoin: ({ consultation }) =>
      consultation.status === ConsultationStatus.IN_PROGRESS ||
      Boolean(participantOf(consultation, ParticipantRole.PATIENT)?.admittedAt),
    actions: ({ consultation }, act) =>
      participantOf(consultation, ParticipantRole.PATIENT)?.checkedInAt
        ? []
        : [
            h(
              'button',
              {
                type: 'button',
                'data-test': 'check-in',
                onclick: () => act('Check in', () => client.checkIn({ consultationId })),
              },
              'Check in',
            ),
          ],
    forms: (act) => [
      reportForm(session, consultationId, act),
      imageForm(session, consultationId, act),
    ],
  });
}

function reportForm(session: Session, consultationId: string, act: Act): HTMLElement {
  const kind = h(
    'select',
    { name: 'issue-type' },
    h('option', { value: TechnicalIssueType.AUDIO }, 'Sound'),
    h('option', { value: TechnicalIssueType.VIDEO }, 'Picture'),
    h('option', { value: TechnicalIssueType.CONNECTION }, 'Connection'),
    h('option', { value: TechnicalIssueType.OTHER }, 'Other'),
  );
  const description = h('input', {
    type: 'text',
    name: 'description',
    maxlength: 1000,
    placeholder: 'what happens?',
  });
  return h(
    'form',
    {
      'data-test': 'report',
      onsubmit: (event: Event) => {
        event.preventDefault();
        void act('Report', async () => {
          await session.client.reportTechnicalIssue({
            consultationId,
            issueType: Number(kind.value) as TechnicalIssueType,
            description: description.value,
            // A retried click files the report once.
            idempotencyKey: crypto.randomUUID(),
          });
          description.value = '';
        });
      },
    },
    'Report a problem: ',
    kind,
    description,
    h('button', { type: 'submit' }, 'Report'),
  );
}

function imageForm(session: Session, consultationId: string, act: Act): HTMLElement {
  const file = h('input', { type: 'file', name: 'image', accept: 'image/png,image/jpeg,.dcm' });
  const done = h('span', { class: 'muted', 'data-test': 'shared' });
  return h(
    'form',
    {
      onsubmit: (event: Event) => {
        event.preventDefault();
        const chosen = file.files?.[0];
        if (!chosen) return;
        void act('Share', async () => {
          const shared = await session.client.shareMedicalImage({
            consultationId,
            content: new Uint8Array(await chosen.arrayBuffer()),
            contentType: chosen.type,
            idempotencyKey: crypto.randomUUID(),
          });
          show(done, `shared ${chosen.name} (${shared.contentType}, ${shared.sizeBytes} bytes)`);
          file.value = '';
        });
      },
    },
    'Share an image with the doctor: ',
    file,
    h('button', { type: 'submit' }, 'Share'),
    done,
  );
}
