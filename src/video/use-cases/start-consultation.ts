import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { transition } from '../../domain/consultation.js';
import type { Caller } from '../audit.js';
import { loadConsultation } from '../consultation-access.js';
import { addEvent, eventScope } from '../events.js';
import { toProtoProvider, toProtoRole } from '../proto-enums.js';
import { ensureProviderSession } from '../provider-session.js';
import { audited, checkBeforeProviderCall, type UseCaseDeps } from '../use-case.js';
import { type ConsultationView, toView } from '../views.js';

/**
 * StartConsultation: the doctor opens the call. Read and check first, create the provider
 * session with no transaction open, then commit; starting a started one changes nothing
 * (`started: false`).
 */
export async function startConsultation(
  deps: UseCaseDeps,
  caller: Caller,
  request: { readonly consultationId: string },
): Promise<{ consultation: ConsultationView; started: boolean }> {
  const { principal } = caller;
  const { consultationId } = request;
  const action = 'consultation.start';
  const { consultation: before } = await checkBeforeProviderCall(
    deps,
    caller,
    action,
    consultationId,
    (c) => transition(c.status, 'start'),
  );
  const session = await ensureProviderSession(deps.providers, before);
  const result = await audited(deps, caller, action, consultationId, async (em) => {
    const c = await loadConsultation(em, principal, consultationId, action);
    const t = transition(c.status, 'start');
    if (!t.changed) return { consultation: toView(c), started: false };
    const now = deps.clock.now();
    c.status = t.to;
    c.startedAt = now;
    c.provider = session.provider;
    c.providerSessionId = c.providerSessionId ?? session.sessionId;
    c.updatedAt = now;
    await em.flush();
    addEvent(
      em,
      'video.consultation.started',
      eventScope(c),
      {
        ...eventScope(c),
        sessionId: c.providerSessionId,
        userId: principal.userId,
        userRole: toProtoRole('doctor'),
        provider: toProtoProvider(c.provider),
        at: timestampFromDate(now),
        version: c.version,
      },
      now,
    );
    return { consultation: toView(c), started: true };
  });
  if (result.started) deps.logger.info({ consultationId }, 'consultation started');
  return result;
}
