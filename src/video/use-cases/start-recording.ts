import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { Principal } from '../../domain/access.js';
import { missingConsent } from '../../domain/consultation.js';
import { failedPrecondition } from '../../domain/errors.js';
import type { ConsultationEntity } from '../../persistence/entities.js';
import type { Caller } from '../audit.js';
import { callerRole, loadConsultation } from '../consultation-access.js';
import { addEvent, eventScope } from '../events.js';
import { toProtoProvider } from '../proto-enums.js';
import { audited, checkBeforeProviderCall, type UseCaseDeps } from '../use-case.js';
import { type ConsultationView, toView } from '../views.js';

/**
 * StartRecording: the doctor starts recording: only in progress, only with every
 * participant's consent, only on a provider that records. Idempotent while recording;
 * the provider call happens with no transaction open.
 */
export async function startRecording(
  deps: UseCaseDeps,
  caller: Caller,
  request: { readonly consultationId: string },
): Promise<ConsultationView> {
  const { principal } = caller;
  const { consultationId } = request;
  const action = 'consultation.record';
  const before = await checkBeforeProviderCall(deps, caller, action, consultationId, (c) =>
    recorderFor(deps, principal, c),
  );
  if (before.consultation.recordingStatus === 'started') return toView(before.consultation);
  const recorder = before.checked;
  const { recordingId } = await recorder.start(before.consultation.providerSessionId ?? '');
  return audited(deps, caller, action, consultationId, async (em) => {
    const c = await loadConsultation(em, principal, consultationId, action);
    recorderFor(deps, principal, c);
    const now = deps.clock.now();
    c.recordingId = recordingId;
    c.recordingStatus = 'started';
    c.updatedAt = now;
    await em.flush();
    addEvent(
      em,
      'video.recording.started',
      eventScope(c),
      {
        ...eventScope(c),
        userId: principal.userId,
        provider: toProtoProvider(c.provider),
        at: timestampFromDate(now),
      },
      now,
    );
    return toView(c);
  });
}

/** The rules of recording, checked before the provider call and again at commit. */
function recorderFor(deps: UseCaseDeps, principal: Principal, c: ConsultationEntity) {
  callerRole(principal, c);
  if (c.status !== 'in_progress') {
    throw failedPrecondition('recording needs the consultation to be in progress');
  }
  const missing = missingConsent(c.participants.getItems());
  if (missing.length > 0) {
    throw failedPrecondition(`recording needs the consent of: ${missing.join(', ')}`);
  }
  const recorder = c.provider ? deps.providers.get(c.provider).recording : undefined;
  if (!recorder) {
    throw failedPrecondition(`recording is not available on the ${c.provider} provider`);
  }
  return recorder;
}
