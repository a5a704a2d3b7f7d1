import { FINAL_STATUSES } from '../../domain/consultation.js';
import type { Caller } from '../audit.js';
import { loadConsultation } from '../consultation-access.js';
import type { UseCaseDeps } from '../use-case.js';
import { type ConsultationView, toView } from '../views.js';
import { openWatch } from '../watching.js';
import { getConsultationStatus } from './get-consultation-status.js';

/**
 * WatchConsultation: the consultation as GetConsultationStatus answers it, then again
 * after every committed change, whichever copy of the service made it; each view newer
 * than the one before (changes committed in quick succession may come as one view, the
 * newest). The stream ends after a final state (ended, cancelled, no-show), with NOT_FOUND
 * once the caller may no longer see the consultation, with UNAUTHENTICATED when the
 * caller's token expires, and cleanly when the service stops or the caller goes. The opening is audited once, as a read.
 */
export async function* watchConsultation(
  deps: UseCaseDeps,
  caller: Caller,
  request: { readonly consultationId: string },
  signal: AbortSignal,
): AsyncGenerator<ConsultationView> {
  const watch = openWatch(deps.watching, caller.principal, signal, (feed, listener) =>
    // Listening before the first read: a change committed meanwhile is not missed.
    feed.watchConsultation(request.consultationId, listener),
  );
  try {
    let view = await getConsultationStatus(deps, caller, request);
    yield view;
    while (!FINAL_STATUSES.has(view.status) && (await watch.next())) {
      // The access rules again, as for every read: a caller who may no longer see it is
      // answered NOT_FOUND, and the stream ends.
      const current = toView(
        await loadConsultation(
          deps.orm.em.fork(),
          caller.principal,
          request.consultationId,
          'consultation.read',
        ),
      );
      if (current.version <= view.version) continue;
      view = current;
      watch.sent();
      yield view;
    }
  } finally {
    watch.close();
  }
}
