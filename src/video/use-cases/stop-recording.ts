import type { Caller } from '../audit.js';
import { callerRole, loadConsultation } from '../consultation-access.js';
import { audited, checkBeforeProviderCall, type UseCaseDeps } from '../use-case.js';
import { type ConsultationView, toView } from '../views.js';

/** StopRecording: the doctor stops the recording. Idempotent. */
export async function stopRecording(
  deps: UseCaseDeps,
  caller: Caller,
  request: { readonly consultationId: string },
): Promise<ConsultationView> {
  const { principal } = caller;
  const { consultationId } = request;
  const action = 'consultation.record';
  const { consultation: before } = await checkBeforeProviderCall(
    deps,
    caller,
    action,
    consultationId,
    (c) => callerRole(principal, c),
  );
  if (before.recordingStatus !== 'started' || !before.recordingId || !before.provider) {
    return toView(before);
  }
  // The provider call happens with no transaction open.
  await deps.providers
    .get(before.provider)
    .recording?.stop(before.providerSessionId ?? '', before.recordingId);
  return audited(deps, caller, action, consultationId, async (em) => {
    const c = await loadConsultation(em, principal, consultationId, action);
    if (c.recordingStatus === 'started') {
      c.recordingStatus = 'stopped';
      c.updatedAt = deps.clock.now();
      await em.flush();
    }
    return toView(c);
  });
}
